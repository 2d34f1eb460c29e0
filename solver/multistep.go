package solver

import (
	"math"
	"slices"

	"github.com/onestepvideo/osv-go/torch"
)

// Multistep configures SampleMultistep: multistep consistency sampling,
// with the Time Travel Sampler's second solve and classifier-free guidance
// as options, and every random draw replaceable by the caller's noise.
type Multistep struct {
	// Sigmas are the N steps' noise levels σ_0 > … > σ_{N−1} > 0.
	Sigmas []float64
	// InitSigma scales the unit noise into the first input, x = InitSigma·ε
	// (0: σ_0). AnimateLCM-SVD's scheduler starts at √(σ_0² + σ_d²).
	InitSigma float64
	// Travel, when set, holds one level per step (each positive and below
	// its σ_n): after x̂0 = f(x, σ_n) the sampler travels to
	// x' = x̂0 + σ'_n·ε' and solves again, x̂0 = f(x', σ'_n) (OSV's TTS).
	Travel []float64
	// ImpliedNoise travels with the noise the step implies, (x − x̂0)/σ_n,
	// instead of fresh noise ε'.
	ImpliedNoise bool
	// StepNoise, when set, holds the unit noise ε_n of each step but the
	// last (x_{n+1} = x̂0 + σ_{n+1}·ε_n; a last entry is ignored), and
	// TravelNoise the fresh ε'_n of each travel; in the noise's shape. Where
	// they are not given, Generator draws them.
	StepNoise, TravelNoise []*torch.Tensor
	// Generator draws the noise not given (travel first, then the step).
	Generator *torch.Generator
	// Consistency is the consistency function over the denoiser.
	Consistency ConsistencyOptions
	// Guidance, when set, holds one classifier-free guidance scale per
	// frame: f is taken over the guided estimate D_u + w_f·(D_c − D_u)
	// (Guided). All ones, or nil, evaluate the conditional branch alone.
	Guidance []float64
	// Callback, when set, sees each step's x̂0 (valid during the call); an
	// error from it stops sampling.
	Callback func(n int, x0 *torch.Tensor) error
}

// SampleMultistep is multistep consistency sampling (Song et al. 2023,
// Algorithm 1) as o configures it:
//
//	x = σ_init·ε;  for n: x̂0 = f(x, σ_n) [travel, solve again];  x = x̂0 + σ_{n+1}·ε_n
//
// returning the last x̂0, float32, owned by s. noise is the unit noise ε
// [B, F, C, h, w]. With the defaults of AnimateLCM-SVD's scheduler
// (σ_d = 1, f = D, guidance on the model output) it is that scheduler's
// sampling. It panics with *torch.Error.
func SampleMultistep(s *torch.Scope, d Denoiser, noise *torch.Tensor, o Multistep) *torch.Tensor {
	const op = "sample_consistency"
	sigmas := o.Sigmas
	if d == nil {
		torch.Failf(op, "nil denoiser")
	}
	if len(sigmas) == 0 {
		torch.Failf(op, "no noise levels")
	}
	for n, sg := range sigmas {
		if !(sg > 0) || (n > 0 && !(sg < sigmas[n-1])) || math.IsInf(sg, 0) {
			torch.Failf(op, "sigmas %v: want strictly decreasing positive levels", sigmas)
		}
	}
	if o.Travel != nil {
		if len(o.Travel) != len(sigmas) {
			torch.Failf(op, "%d travel levels for %d steps", len(o.Travel), len(sigmas))
		}
		for n, st := range o.Travel {
			if !(st > 0) || !(st < sigmas[n]) {
				torch.Failf(op, "travel level %g at step %d must be positive and below σ_n = %g", st, n, sigmas[n])
			}
		}
	}
	if o.InitSigma < 0 || math.IsNaN(o.InitSigma) || math.IsInf(o.InitSigma, 0) {
		torch.Failf(op, "initial σ %g: want a finite value ≥ 0", o.InitSigma)
	}
	if noise.Dim() != 5 {
		torch.Failf(op, "noise: shape %v, want [batch, frames, channels, height, width]", noise.Shape())
	}
	checkFloat(op, "noise", noise)
	if o.Guidance != nil && int64(len(o.Guidance)) != noise.Size(1) {
		torch.Failf(op, "%d guidance scales for %d frames (noise: %v)", len(o.Guidance), noise.Size(1), noise.Shape())
	}
	given := func(name string, ts []*torch.Tensor, n int) *torch.Tensor {
		if n >= len(ts) || ts[n] == nil {
			return nil
		}
		t := ts[n]
		if t.Released() || !slices.Equal(t.Shape(), noise.Shape()) {
			torch.Failf(op, "%s %d: %v, want a tensor of the noise's shape %v", name, n, t, noise.Shape())
		}
		if t.Device() != noise.Device() {
			torch.Failf(op, "%s %d: on %s, the noise is on %s", name, n, t.Device(), noise.Device())
		}
		return t
	}
	c := s.Child()
	defer c.Close()
	draw := func(sc *torch.Scope, name string, ts []*torch.Tensor, n int) *torch.Tensor {
		if t := given(name, ts, n); t != nil {
			return sc.Cast(t, torch.Float32)
		}
		if o.Generator == nil {
			torch.Failf(op, "a generator is needed for fresh noise (%s %d)", name, n)
		}
		e, err := o.Generator.Randn(sc, noise.Shape(), torch.Float32, noise.Device())
		if err != nil {
			torch.Failf(op, "%v", err)
		}
		return e
	}
	den := d
	if o.Guidance != nil {
		den = Guided(d, o.Guidance)
	}
	init := o.InitSigma
	if init == 0 {
		init = sigmas[0]
	}
	x := c.MulScalar(c.Cast(noise, torch.Float32), init)
	var x0 *torch.Tensor
	for n, sg := range sigmas {
		step := c.Child()
		x0 = Consistency(step, den, x, sigmaTensor(step, x, sg), o.Consistency)
		if o.Travel != nil {
			var e *torch.Tensor
			if o.ImpliedNoise {
				e = step.MulScalar(step.Sub(x, x0), 1/sg)
			} else {
				e = draw(step, "travel noise", o.TravelNoise, n)
			}
			xt := step.Add(x0, step.MulScalar(e, o.Travel[n]))
			x0 = Consistency(step, den, xt, sigmaTensor(step, xt, o.Travel[n]), o.Consistency)
		}
		if o.Callback != nil {
			if err := o.Callback(n, x0); err != nil {
				step.Close()
				torch.Failf(op, "callback at step %d: %w", n, err)
			}
		}
		if n+1 < len(sigmas) {
			prev := x
			x = step.Keep(step.Add(x0, step.MulScalar(draw(step, "step noise", o.StepNoise, n), sigmas[n+1])))
			c.Drop(prev)
		} else {
			step.Keep(x0)
		}
		step.Close()
	}
	return c.Keep(x0)
}

// Guided wraps a denoiser so that its conditional branch is the per-frame
// classifier-free-guided estimate D_g = D_u + w_f·(D_c − D_u) in float32
// (both branches in one call when d is a PairDenoiser); its unconditional
// branch is d's. guidance holds one scale per frame (FrameGuidance); all
// ones give d's conditional branch alone. This is how consistency samplers
// guide, AnimateLCM-SVD's among them.
func Guided(d Denoiser, guidance []float64) Denoiser {
	return guidedDenoiser{d: d, guidance: slices.Clone(guidance)}
}

type guidedDenoiser struct {
	d        Denoiser
	guidance []float64
}

func (g guidedDenoiser) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	const op = "guided"
	if !cond {
		return g.d.Denoise(s, x, sigma, false)
	}
	if int64(len(g.guidance)) != x.Size(1) {
		torch.Failf(op, "%d guidance scales for %d frames (x: %v)", len(g.guidance), x.Size(1), x.Shape())
	}
	c := s.Child()
	defer c.Close()
	out := func(name string, t *torch.Tensor) *torch.Tensor {
		if t == nil || !slices.Equal(t.Shape(), x.Shape()) {
			torch.Failf(op, "%s denoiser output %v, want x's shape %v", name, t, x.Shape())
		}
		return c.Cast(t, torch.Float32)
	}
	w := guidanceWeight(c, op, g.guidance, x.Device())
	return c.Keep(guided(c, g.d, x, sigma, w, out))
}
