package main

import (
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// The toy's σ range, used for the training grid and the samplers: SVD's
// σ_min and ρ, and EDM's σ_max of 80, since above it the unit-scale
// latents carry no information (SVD's 700 would put 45 of the 100 grid
// levels there).
const (
	sigmaMin = 0.002
	sigmaMax = 80.0
	rho      = 7
)

// sampler generates latents [B, F, C, h, w] for a batch from unit noise.
type sampler struct {
	name   string
	nfe    int
	travel float64 // the TTS's travel level (0: no travel)
	run    func(s *torch.Scope, u *unet.Model, b osv.Batch, noise *torch.Tensor, g *torch.Generator) *torch.Tensor
}

// teacherSampler is the teacher's guided Euler sampler on n Karras steps
// (2n UNet evaluations, batched in pairs).
func teacherSampler(n int, minG, maxG float64) sampler {
	return sampler{name: "teacher", nfe: 2 * n, run: func(s *torch.Scope, u *unet.Model, b osv.Batch, noise *torch.Tensor, _ *torch.Generator) *torch.Tensor {
		sig := append(solver.KarrasSigmas(n, sigmaMin, sigmaMax, rho), 0)
		x := s.MulScalar(noise, sig[0])
		return solver.SampleEulerCFG(s, osv.GuidedDenoiser(u, b), x, sig, solver.FrameGuidance(minG, maxG, int(noise.Size(1))), nil)
	}}
}

// studentSteps is multistep consistency sampling on n steps: the first n
// levels of the (n+1)-level Karras schedule (one step: σ_max alone).
func studentSteps(n int) sampler {
	return sampler{name: "osv", nfe: n, run: func(s *torch.Scope, u *unet.Model, b osv.Batch, noise *torch.Tensor, g *torch.Generator) *torch.Tensor {
		steps, _ := solver.TTSSchedule(n, sigmaMin, sigmaMax, rho)
		return solver.SampleConsistency(s, osv.GuidedDenoiser(u, b), noise, steps, g, solver.ConsistencyOptions{}, nil)
	}}
}

// studentTTS is one step at σ_max followed by the Time Travel Sampler's
// second solve: travel to the middle level of the 3-level Karras
// schedule (where a 2-step sampler's second step sits) with the noise the
// first step implies, and solve again (2 evaluations). With fresh noise
// it would be the 2-step sampler exactly.
func studentTTS() sampler { return studentTTSAt(travelSigma(), true) }

// travelSigma is the TTS's default travel level: the middle level of the
// 3-level Karras schedule.
func travelSigma() float64 { return solver.KarrasSigmas(3, sigmaMin, sigmaMax, rho)[1] }

// studentTTSAt is one step at σ_max, then travel to σ_t with the implied
// noise (implied) or fresh noise, and a second solve.
func studentTTSAt(travel float64, implied bool) sampler {
	name := "osv+tts"
	if !implied {
		name = "osv+tts-fresh"
	}
	return sampler{name: name, nfe: 2, travel: travel, run: func(s *torch.Scope, u *unet.Model, b osv.Batch, noise *torch.Tensor, g *torch.Generator) *torch.Tensor {
		return solver.SampleTTS(s, osv.GuidedDenoiser(u, b), noise, []float64{sigmaMax}, g, solver.ConsistencyOptions{},
			solver.TTSOptions{TravelSigmas: []float64{travel}, ImpliedNoise: implied}, nil)
	}}
}
