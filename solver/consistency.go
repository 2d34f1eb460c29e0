package solver

import (
	"github.com/onestepvideo/osv-go/torch"
)

// ConsistencyOptions define the student's consistency function f(x, σ)
// over its denoiser (OSV.md section 2). The zero value is OSV's default,
// f = D: SVD's preconditioning already gives f(x, σ_min) ≈ x.
type ConsistencyOptions struct {
	// LCMBoundary uses LCM's boundary condition f = c_s·x + c_o·D with
	// c_s = σ_d²/((sσ)² + σ_d²) and c_o = sσ/√((sσ)² + σ_d²).
	LCMBoundary bool
	SigmaData   float64 // σ_d of the LCM boundary (0.5)
	Scale       float64 // timestep scale s of the LCM boundary (10)
}

func (o ConsistencyOptions) lcm() (sd, scale float64) {
	sd, scale = o.SigmaData, o.Scale
	if sd == 0 {
		sd = 0.5
	}
	if scale == 0 {
		scale = 10
	}
	return sd, scale
}

// Consistency is the consistency function f(x, σ) of a denoiser's
// conditional (unguided) branch; sigma is [B] float32. The result is
// float32, owned by s, and carries the gradient of d's trainable weights.
func Consistency(s *torch.Scope, d Denoiser, x, sigma *torch.Tensor, o ConsistencyOptions) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	den := c.Cast(d.Denoise(c, x, sigma, true), torch.Float32)
	if !o.LCMBoundary {
		return c.Keep(den)
	}
	sd, scale := o.lcm()
	b := x.Size(0)
	ss := c.MulScalar(c.Cast(sigma, torch.Float32), scale)
	den2 := c.AddScalar(c.Square(ss), sd*sd)
	cs := c.Reshape(c.RDiv(sd*sd, den2), b, 1, 1, 1, 1)
	co := c.Reshape(c.Mul(ss, c.Rsqrt(den2)), b, 1, 1, 1, 1)
	return c.Keep(c.Add(c.Mul(c.Cast(x, torch.Float32), cs), c.Mul(den, co)))
}

// sigmaTensor is σ repeated over the batch of x, float32.
func sigmaTensor(s *torch.Scope, x *torch.Tensor, sigma float64) *torch.Tensor {
	t, err := torch.Full(s, []int64{x.Size(0)}, sigma, torch.Float32, x.Device())
	if err != nil {
		torch.Failf("sigma", "%v", err)
	}
	return t
}

// SampleConsistency is multistep consistency sampling (Song et al. 2023,
// Algorithm 1) for the student, without guidance: with N = len(sigmas)
// decreasing positive levels,
//
//	x = σ_0·ε;  for n: x̂0 = f(x, σ_n);  x = x̂0 + σ_{n+1}·ε_n
//
// returning the last x̂0 (N denoiser calls). noise is the unit noise ε
// [B, F, C, h, w]; the ε_n are drawn from g. The result is float32, owned
// by s. callback, when set, sees each step's x̂0. It panics with
// *torch.Error.
func SampleConsistency(s *torch.Scope, d Denoiser, noise *torch.Tensor, sigmas []float64, g *torch.Generator,
	o ConsistencyOptions, callback func(n int, x0 *torch.Tensor)) *torch.Tensor {
	return SampleMultistep(s, d, noise, Multistep{Sigmas: sigmas, Generator: g, Consistency: o, Callback: wrapCallback(callback)})
}

func wrapCallback(cb func(int, *torch.Tensor)) func(int, *torch.Tensor) error {
	if cb == nil {
		return nil
	}
	return func(n int, x0 *torch.Tensor) error { cb(n, x0); return nil }
}

// TTSOptions are the Time Travel Sampler's choices (OSV.md section 7; the
// paper's equation 13 is lost, so both are options).
type TTSOptions struct {
	// TravelSigmas is σ'_n, the lower level each step travels to; one per
	// step. TTSSchedule gives OSV's default.
	TravelSigmas []float64
	// ImpliedNoise travels with the noise the step implies, (x − x̂0)/σ_n,
	// instead of fresh noise.
	ImpliedNoise bool
}

// TTSSchedule is OSV's default schedule for an n-step TTS: the
// (n+1)-level Karras schedule over [sigmaMin, sigmaMax], whose first n
// levels are the steps σ_n and whose levels 1..n are where each step
// travels (σ'_n = σ_{n+1}; for n = 1: a step at σ_max, a travel to σ_min).
func TTSSchedule(n int, sigmaMin, sigmaMax, rho float64) (steps, travel []float64) {
	k := KarrasSigmas(n+1, sigmaMin, sigmaMax, rho)
	if len(k) < 2 {
		return nil, nil
	}
	return k[:n], k[1:]
}

// SampleTTS is OSV's Time Travel Sampler: multistep consistency sampling
// in which each step, after x̂0 = f(x, σ_n), travels to a lower level,
// x' = x̂0 + σ'_n·ε', and solves again, x̂0 = f(x', σ'_n): 2N denoiser calls
// for N steps (N = 1 by default in OSV: "1 step + TTS, NFE 2"). Arguments
// as SampleConsistency; t.TravelSigmas must hold one level per step, each
// positive and below its σ_n. It panics with *torch.Error.
func SampleTTS(s *torch.Scope, d Denoiser, noise *torch.Tensor, sigmas []float64, g *torch.Generator,
	o ConsistencyOptions, t TTSOptions, callback func(n int, x0 *torch.Tensor)) *torch.Tensor {
	if len(t.TravelSigmas) != len(sigmas) {
		torch.Failf("sample_tts", "%d travel levels for %d steps", len(t.TravelSigmas), len(sigmas))
	}
	return SampleMultistep(s, d, noise, Multistep{Sigmas: sigmas, Travel: t.TravelSigmas, ImpliedNoise: t.ImpliedNoise,
		Generator: g, Consistency: o, Callback: wrapCallback(callback)})
}
