package solver

import (
	"slices"

	"github.com/onestepvideo/osv-go/torch"
)

// Denoiser is the contract every sampler and solver here works over: the
// denoised estimate D(x; σ) of noisy latents x [B, F, C, h, w] at noise
// levels sigma (float32 [B], on x's device), in x's shape, owned by s. cond
// selects the conditional branch; false is the unconditional branch of
// classifier-free guidance. It panics with *torch.Error on failure.
type Denoiser interface {
	Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor
}

// PairDenoiser is a Denoiser that can evaluate both branches at once (for
// example as one model call on a batch of 2B); the guided sampler uses it
// when available.
type PairDenoiser interface {
	Denoiser
	DenoisePair(s *torch.Scope, x, sigma *torch.Tensor) (uncond, cond *torch.Tensor)
}

// DenoiserFunc adapts a function to the Denoiser interface.
type DenoiserFunc func(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor

// Denoise calls f.
func (f DenoiserFunc) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	return f(s, x, sigma, cond)
}

// SampleEulerCFG integrates the probability-flow ODE with Euler's method
// (Karras et al. 2022, Algorithm 1 without its second-order correction;
// k-diffusion's sample_euler) under per-frame
// linear classifier-free guidance, as SVD's teacher samples. For each
// i = 0..len(sigmas)−2:
//
//	D_g = D_u + g_f·(D_c − D_u)                      (g_f along frame dim 1)
//	x   ← x + (σ_{i+1} − σ_i)·(x − D_g)/σ_i
//
// with D_u, D_c the unconditional and conditional denoised estimates at σ_i;
// a step to σ_{i+1} = 0 returns D_g exactly. x is [B, F, C, h, w], guidance
// holds one scale per frame (FrameGuidance), sigmas decrease and all but the
// last are positive (for SVD: Scheduler.Sigmas, or KarrasSigmas with a 0
// appended). When every scale is 1 only the conditional branch is
// evaluated. The arithmetic is float32; the result has x's dtype and is
// owned by s. callback, when not nil, sees step i's result x (valid during
// the call only); an error from it stops sampling.
//
// diffusers' SVD pipeline guides the UNet's v output and then steps its
// scheduler; that is the same update, because D = c_skip·x + c_out·v is
// affine in v with the same coefficients for both branches, so guiding v
// and guiding D agree up to rounding.
//
// It panics with *torch.Error (a failed callback's error is wrapped).
func SampleEulerCFG(s *torch.Scope, d Denoiser, x *torch.Tensor, sigmas []float64, guidance []float64,
	callback func(i int, x *torch.Tensor) error) *torch.Tensor {
	const op = "sample_euler_cfg"
	if d == nil {
		torch.Failf(op, "nil denoiser")
	}
	if x.Dim() != 5 {
		torch.Failf(op, "x: shape %v, want [batch, frames, channels, height, width]", x.Shape())
	}
	checkFloat(op, "x", x)
	frames := x.Size(1)
	if int64(len(guidance)) != frames {
		torch.Failf(op, "%d guidance scales for %d frames (x: %v)", len(guidance), frames, x.Shape())
	}
	for i := 0; i+1 < len(sigmas); i++ {
		if !(sigmas[i] > 0) {
			torch.Failf(op, "sigmas[%d] = %g: every σ but the last must be positive", i, sigmas[i])
		}
	}
	if len(sigmas) < 2 {
		return s.Clone(x)
	}
	c := s.Child()
	defer c.Close()
	weight := guidanceWeight(c, op, guidance, x.Device())
	cur := x
	for i := 0; i+1 < len(sigmas); i++ {
		next, dg := eulerCFGStep(c, d, cur, sigmas[i], sigmas[i+1], weight)
		c.Drop(dg)
		if cur != x && cur != next {
			c.Drop(cur)
		}
		cur = next
		if callback != nil {
			if err := callback(i, cur); err != nil {
				torch.Failf(op, "callback at step %d: %w", i, err)
			}
		}
	}
	return c.Keep(cur)
}

// guidanceWeight is the per-frame scale as a [1, F, 1, 1, 1] float32
// tensor, or nil when every scale is 1 (no guidance).
func guidanceWeight(s *torch.Scope, op string, guidance []float64, dev torch.Device) *torch.Tensor {
	guided := false
	for _, g := range guidance {
		guided = guided || g != 1
	}
	if !guided {
		return nil
	}
	w := make([]float32, len(guidance))
	for f, g := range guidance {
		w[f] = float32(g)
	}
	t, err := torch.FromFloat32(s, w, []int64{1, int64(len(w)), 1, 1, 1}, torch.Float32, dev)
	if err != nil {
		torch.Failf(op, "guidance: %v", err)
	}
	return t
}

// eulerCFGStep is one guided Euler step from σ to σNext (weight nil: the
// conditional branch alone); it returns the new x and the guided estimate
// D_g(x; σ) in float32, both owned by parent.
func eulerCFGStep(parent *torch.Scope, d Denoiser, x *torch.Tensor, sigma, sigmaNext float64, weight *torch.Tensor) (next, denoised *torch.Tensor) {
	s := parent.Child()
	defer s.Close()
	sg, err := torch.Full(s, []int64{x.Size(0)}, sigma, torch.Float32, x.Device())
	if err != nil {
		torch.Failf("sample_euler_cfg", "sigma: %v", err)
	}
	// out checks a branch's estimate and brings it to float32.
	out := func(name string, t *torch.Tensor) *torch.Tensor {
		if t == nil || !slices.Equal(t.Shape(), x.Shape()) {
			torch.Failf("sample_euler_cfg", "%s denoiser output %v, want x's shape %v", name, t, x.Shape())
		}
		return s.Cast(t, torch.Float32)
	}
	dg := guided(s, d, x, sg, weight, out)
	if sigmaNext == 0 {
		next := s.Cast(dg, x.DType())
		if next == dg { // the same tensor: the two results must not alias
			next = s.Clone(dg)
		}
		return s.Keep(next), s.Keep(dg)
	}
	xf := s.Cast(x, torch.Float32)
	deriv := s.Div(s.Sub(xf, dg), scalar(s, xf, float32(sigma)))
	return s.Keep(s.Cast(s.Add(xf, s.Mul(deriv, scalar(s, xf, float32(sigmaNext-sigma)))), x.DType())), s.Keep(dg)
}

// guided is D_g = D_u + w·(D_c − D_u) in float32 at noise levels sg (weight
// nil: the conditional branch alone); out checks and casts each branch.
func guided(s *torch.Scope, d Denoiser, x, sg, weight *torch.Tensor, out func(string, *torch.Tensor) *torch.Tensor) *torch.Tensor {
	switch pd, ok := d.(PairDenoiser); {
	case weight == nil:
		return out("conditional", d.Denoise(s, x, sg, true))
	case ok:
		du, dc := pd.DenoisePair(s, x, sg)
		return s.Lerp(out("unconditional", du), out("conditional", dc), weight)
	default:
		du := out("unconditional", d.Denoise(s, x, sg, false))
		dc := out("conditional", d.Denoise(s, x, sg, true))
		return s.Lerp(du, dc, weight)
	}
}
