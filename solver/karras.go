package solver

import "math"

// KarrasSigmas is the noise schedule of Karras et al. 2022, "Elucidating
// the Design Space of Diffusion-Based Generative Models" (eq. 5): n noise
// levels from sigmaMax down to sigmaMin, evenly spaced in σ^{1/ρ},
//
//	σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,  i = 0..n−1.
//
// It is computed in float64 as diffusers computes it (ramp i·(1/(n−1)),
// last ramp value exactly 1). Unlike k-diffusion's get_sigmas_karras, no
// final 0 is appended: append it for a sampler that should end on clean
// data. n = 1 gives [σ_max]; n < 1 gives nil. SVD's teacher uses σ_min
// 0.002, σ_max 700, ρ 7.
func KarrasSigmas(n int, sigmaMin, sigmaMax, rho float64) []float64 {
	if n < 1 {
		return nil
	}
	lo := math.Pow(sigmaMin, 1/rho)
	hi := math.Pow(sigmaMax, 1/rho)
	ramp := linspace64(0, 1, n)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(hi+float64(r*(lo-hi)), rho)
	}
	return out
}

// FrameGuidance is the classifier-free guidance scale of each of frames
// frames, linearly spaced from minG (first frame) to maxG (last frame).
// The values are the float32 ones SVD's pipeline makes with torch.linspace,
// so that guided sampling matches it exactly. One frame gets minG; frames
// < 1 gives nil.
func FrameGuidance(minG, maxG float64, frames int) []float64 {
	if frames < 1 {
		return nil
	}
	g := linspace32(float32(minG), float32(maxG), frames)
	out := make([]float64, frames)
	for i, v := range g {
		out[i] = float64(v)
	}
	return out
}
