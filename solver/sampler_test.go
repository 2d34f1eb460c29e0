package solver

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// counting is a Denoiser that counts its calls per branch.
type counting struct {
	f            DenoiserFunc
	cond, uncond int
}

func (c *counting) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	if cond {
		c.cond++
	} else {
		c.uncond++
	}
	return c.f(s, x, sigma, cond)
}

// pair evaluates both branches as one batch of 2B.
type pair struct {
	counting
	pairs int
}

func (p *pair) DenoisePair(s *torch.Scope, x, sigma *torch.Tensor) (uncond, cond *torch.Tensor) {
	p.pairs++
	xx := s.Cat(0, x, x)
	ss := s.Cat(0, sigma, sigma)
	b := x.Size(0)
	u := p.f(s, s.Slice(xx, 0, 0, b), s.Slice(ss, 0, 0, b), false)
	c := p.f(s, s.Slice(xx, 0, b, 2*b), s.Slice(ss, 0, b, 2*b), true)
	return u, c
}

// run calls SampleEulerCFG and returns its result as Go data.
func run(t *testing.T, s *torch.Scope, d Denoiser, x *torch.Tensor, sigmas, g []float64,
	cb func(int, *torch.Tensor) error) ([]float32, error) {
	t.Helper()
	var out *torch.Tensor
	var err error
	func() {
		defer torch.Recover(&err)
		out = SampleEulerCFG(s, d, x, sigmas, g, cb)
	}()
	if err != nil {
		return nil, err
	}
	require.Equal(t, x.Shape(), out.Shape())
	v, err := out.Float32s()
	require.NoError(t, err)
	return v, nil
}

func noise(t *testing.T, s *torch.Scope, seed uint64, scale float64, shape ...int64) *torch.Tensor {
	t.Helper()
	g, err := torch.NewGenerator(seed)
	require.NoError(t, err)
	defer g.Close()
	x, err := g.Randn(s, shape, torch.Float32, testDevice)
	require.NoError(t, err)
	return s.MulScalar(x, scale)
}

func withZero(sigmas []float64) []float64 { return append(sigmas, 0) }

// A denoiser that always returns the same data x0 takes every sample to x0:
// Euler is exact for a constant D, x_i − x0 = (σ_i/σ_0)(x_0 − x0).
func TestSamplerFixedDataReturnsIt(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	shape := []int64{2, 3, 4, 2, 3}
	x0 := noise(t, s, 1, 1, shape...)
	sigmas := withZero(KarrasSigmas(6, 0.002, 700, 7))
	xInit := noise(t, s, 2, sigmas[0], shape...)
	d := DenoiserFunc(func(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
		return s.Clone(x0)
	})
	want, err := x0.Float32s()
	require.NoError(t, err)
	init, err := xInit.Float32s()
	require.NoError(t, err)
	worst := 0.0
	got, err := run(t, s, d, xInit, sigmas, FrameGuidance(1, 3, 3), func(i int, x *torch.Tensor) error {
		v, err := x.Float32s()
		if err != nil {
			return err
		}
		r := sigmas[i+1] / sigmas[0]
		mid := make([]float32, len(v))
		for k := range mid {
			mid[k] = float32(float64(want[k]) + r*(float64(init[k])-float64(want[k])))
		}
		e, err := fixture.RelL2(v, mid)
		worst = math.Max(worst, e)
		return err
	})
	require.NoError(t, err)
	e, err := fixture.RelL2(got, want)
	require.NoError(t, err)
	t.Logf("fixed data: final relative L2 error %.3g, worst intermediate %.3g", e, worst)
	require.LessOrEqual(t, e, 1e-5)
	require.LessOrEqual(t, worst, 1e-5)
}

// toy is a nonlinear two-branch denoiser: D_c = 0.8·tanh(x), D_u = x/(σ+1).
func toy(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	if cond {
		return s.MulScalar(s.Tanh(x), 0.8)
	}
	sg := s.Reshape(sigma, x.Size(0), 1, 1, 1, 1)
	return s.Div(x, s.AddScalar(sg, 1))
}

// toyRef is the guided Euler sampler with toy, in float64.
func toyRef(x []float32, frames, per int, sigmas, g []float64) []float32 {
	v := make([]float64, len(x))
	for k := range v {
		v[k] = float64(x[k])
	}
	for i := 0; i+1 < len(sigmas); i++ {
		sg, next := sigmas[i], sigmas[i+1]
		for k := range v {
			f := (k / per) % frames
			du, dc := v[k]/(sg+1), 0.8*math.Tanh(v[k])
			dg := du + g[f]*(dc-du)
			if next == 0 {
				v[k] = dg
			} else {
				v[k] += (next - sg) * (v[k] - dg) / sg
			}
		}
	}
	out := make([]float32, len(v))
	for k := range v {
		out[k] = float32(v[k])
	}
	return out
}

func TestSamplerMatchesFormula(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	shape := []int64{2, 4, 2, 3, 2}
	sigmas := withZero(KarrasSigmas(5, 0.002, 80, 7))
	x := noise(t, s, 3, sigmas[0], shape...)
	xs, err := x.Float32s()
	require.NoError(t, err)
	g := FrameGuidance(1, 3, 4)
	for _, d := range []Denoiser{DenoiserFunc(toy), &pair{counting: counting{f: toy}}} {
		got, err := run(t, s, d, x, sigmas, g, nil)
		require.NoError(t, err)
		e, err := fixture.RelL2(got, toyRef(xs, 4, 12, sigmas, g))
		require.NoError(t, err)
		t.Logf("%T: relative L2 error against the float64 formula %.3g", d, e)
		require.LessOrEqual(t, e, 1e-5)
	}
}

// Guidance 1 on every frame is the conditional sampler: only the
// conditional branch runs, and the result equals guiding two identical
// branches.
func TestSamplerGuidanceOneIsConditional(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	shape := []int64{1, 3, 2, 2, 2}
	sigmas := withZero(KarrasSigmas(4, 0.002, 80, 7))
	x := noise(t, s, 4, sigmas[0], shape...)
	xs, err := x.Float32s()
	require.NoError(t, err)

	d := &counting{f: toy}
	one, err := run(t, s, d, x, sigmas, FrameGuidance(1, 1, 3), nil)
	require.NoError(t, err)
	require.Equal(t, 0, d.uncond, "unconditional branch evaluated at guidance 1")
	require.Equal(t, len(sigmas)-1, d.cond)

	condOnly := DenoiserFunc(func(s *torch.Scope, x, sigma *torch.Tensor, _ bool) *torch.Tensor {
		return toy(s, x, sigma, true)
	})
	guided, err := run(t, s, condOnly, x, sigmas, FrameGuidance(0.5, 3, 3), nil)
	require.NoError(t, err)
	e, err := fixture.RelL2(one, guided)
	require.NoError(t, err)
	require.LessOrEqual(t, e, 1e-6, "guidance 1 against identical guided branches")

	e, err = fixture.RelL2(one, toyRef(xs, 3, 8, sigmas, []float64{1, 1, 1}))
	require.NoError(t, err)
	t.Logf("guidance 1: relative L2 error against the conditional formula %.3g", e)
	require.LessOrEqual(t, e, 1e-5)
}

func TestSamplerStepCount(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x := noise(t, s, 5, 10, 1, 2, 1, 2, 2)
	for _, n := range []int{1, 2, 7} {
		sigmas := withZero(KarrasSigmas(n, 0.002, 10, 7))
		var seen []int
		cb := func(i int, _ *torch.Tensor) error { seen = append(seen, i); return nil }

		d := &counting{f: toy}
		_, err := run(t, s, d, x, sigmas, []float64{1, 2}, cb)
		require.NoError(t, err)
		require.Equal(t, n, d.cond, "conditional calls for %d σ's", len(sigmas))
		require.Equal(t, n, d.uncond, "unconditional calls for %d σ's", len(sigmas))
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		require.Equal(t, want, seen, "callback steps")

		p := &pair{counting: counting{f: toy}}
		_, err = run(t, s, p, x, sigmas, []float64{1, 2}, nil)
		require.NoError(t, err)
		require.Equal(t, n, p.pairs, "paired calls")
		require.Zero(t, p.cond+p.uncond, "single-branch calls of a pair denoiser")
	}
	// One σ: no step, a copy of x.
	d := &counting{f: toy}
	got, err := run(t, s, d, x, []float64{3}, []float64{1, 2}, nil)
	require.NoError(t, err)
	xs, err := x.Float32s()
	require.NoError(t, err)
	require.Equal(t, xs, got)
	require.Zero(t, d.cond+d.uncond)
}

// Each frame f gets its own weight g_f: with D_u = 0 and D_c = 1 the
// guided estimate is g_f on frame f, whatever the batch element.
func TestSamplerPerFrameGuidance(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	shape := []int64{2, 4, 3, 2, 2}
	per := int(shape[2] * shape[3] * shape[4])
	g := []float64{0, 0.25, 1, 3}
	d := DenoiserFunc(func(s *torch.Scope, x, _ *torch.Tensor, cond bool) *torch.Tensor {
		zero := s.MulScalar(x, 0)
		if cond {
			return s.AddScalar(zero, 1)
		}
		return zero
	})
	x := noise(t, s, 6, 2, shape...)
	xs, err := x.Float32s()
	require.NoError(t, err)
	var mid []float32
	got, err := run(t, s, d, x, []float64{2, 1, 0}, g, func(i int, x *torch.Tensor) error {
		if i == 0 {
			mid, err = x.Float32s()
		}
		return err
	})
	require.NoError(t, err)
	for k, v := range got {
		f := (k / per) % len(g)
		require.InDelta(t, g[f], v, 1e-6, "frame %d, element %d", f, k)
		// One Euler step from σ 2 to 1: x + (1 − 2)(x − g)/2 = (x + g)/2.
		require.InDelta(t, (float64(xs[k])+g[f])/2, mid[k], 1e-6, "frame %d after step 0", f)
	}
}

func TestSamplerRejectsBadInput(t *testing.T) {
	start := torch.Live()
	s := torch.NewScope()
	x := noise(t, s, 7, 1, 1, 2, 1, 2, 2)
	sigmas := []float64{2, 1, 0}
	stop := errors.New("stop here")
	cases := []struct {
		name   string
		d      Denoiser
		x      *torch.Tensor
		sigmas []float64
		g      []float64
		cb     func(int, *torch.Tensor) error
		want   string
	}{
		{"guidance per frame", DenoiserFunc(toy), x, sigmas, []float64{1, 2, 3}, nil, "3 guidance scales for 2 frames"},
		{"rank", DenoiserFunc(toy), s.Reshape(x, 2, 1, 2, 2), sigmas, []float64{1, 2}, nil, "want [batch, frames"},
		{"zero sigma", DenoiserFunc(toy), x, []float64{2, 0, 0}, []float64{1, 2}, nil, "sigmas[1] = 0"},
		{"integer x", DenoiserFunc(toy), s.Cast(x, torch.Int64), sigmas, []float64{1, 2}, nil, "dtype int64"},
		{"nil denoiser", nil, x, sigmas, []float64{1, 2}, nil, "nil denoiser"},
		{"callback", DenoiserFunc(toy), x, sigmas, []float64{1, 2}, func(int, *torch.Tensor) error { return stop }, "callback at step 0: stop here"},
		{"denoiser shape", DenoiserFunc(func(s *torch.Scope, x, _ *torch.Tensor, _ bool) *torch.Tensor {
			return s.Slice(x, 1, 0, 1)
		}), x, sigmas, []float64{1, 3}, nil, "unconditional denoiser output Tensor([1 1 1 2 2]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := run(t, s, c.d, c.x, c.sigmas, c.g, c.cb)
			require.ErrorContains(t, err, c.want)
			t.Log(err)
			if c.name == "callback" {
				require.ErrorIs(t, err, stop)
			}
		})
	}
	s.Close()
	require.Equal(t, start, torch.Live(), "native tensors leaked by failed sampling")
}
