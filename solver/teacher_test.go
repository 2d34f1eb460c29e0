package solver

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// gaussian is the exact denoiser of unit-variance Gaussian data,
// D(x; σ) = x/(σ²+1), counting its calls.
type gaussian struct{ calls int }

func (g *gaussian) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	g.calls++
	b := x.Size(0)
	sg := s.Reshape(s.Cast(sigma, torch.Float32), b, 1, 1, 1, 1)
	return s.Div(s.Cast(x, torch.Float32), s.AddScalar(s.Square(sg), 1))
}

// constant returns the same data x0 whatever it is given.
type constant struct {
	x0    *torch.Tensor
	calls int
}

func (c *constant) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	c.calls++
	return s.Clone(c.x0)
}

func runOK(t *testing.T, f func()) {
	t.Helper()
	var err error
	func() {
		defer torch.Recover(&err)
		f()
	}()
	require.NoError(t, err)
}

func values(t *testing.T, x *torch.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

func ones(n int) []float64 {
	g := make([]float64, n)
	for i := range g {
		g[i] = 1
	}
	return g
}

func TestTeacherSolveOneStepIsEuler(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(1)
	defer g.Close()
	x, _ := g.Randn(s, []int64{2, 3, 4, 2, 2}, torch.Float32, torch.CPU)
	d := &gaussian{}
	runOK(t, func() {
		sol, last := TeacherSolve(s, d, x, []float64{5, 3}, ones(3))
		require.Equal(t, 1, d.calls)
		xs := values(t, x)
		for i, v := range values(t, sol) {
			want := xs[i] + float32(3-5)*(xs[i]-xs[i]/26)/5
			require.InDelta(t, want, v, 1e-5)
		}
		for i, v := range values(t, last) {
			require.InDelta(t, xs[i]/26, v, 1e-6)
		}
	})
}

// On Gaussian data the probability-flow ODE has the closed form
// x(σ) = x(σ₀)·√((σ²+1)/(σ₀²+1)); the solver's error must fall as k grows.
func TestTeacherSolveConvergesOnGaussianData(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(2)
	defer g.Close()
	x, _ := g.Randn(s, []int64{1, 2, 4, 3, 3}, torch.Float32, torch.CPU)
	const from, to = 20.0, 0.3
	xs := values(t, x)
	exact := make([]float32, len(xs))
	for i := range xs {
		exact[i] = xs[i] * float32(math.Sqrt((to*to+1)/(from*from+1)))
	}
	prev := math.Inf(1)
	errs := map[int]float64{}
	for _, k := range []int{1, 2, 5, 10, 40} {
		runOK(t, func() {
			sigmas := KarrasSigmas(k+1, to, from, 7)
			sol, _ := TeacherSolve(s, &gaussian{}, x, sigmas, ones(2))
			var num, den float64
			for i, v := range values(t, sol) {
				num += float64(v-exact[i]) * float64(v-exact[i])
				den += float64(exact[i]) * float64(exact[i])
			}
			e := math.Sqrt(num / den)
			t.Logf("k = %d: relative error %.3g", k, e)
			require.Less(t, e, prev, "error must fall as k grows")
			prev = e
			errs[k] = e
		})
	}
	// Euler is first order: four times the steps, about a quarter of the error.
	require.Less(t, errs[40]/errs[10], 0.35)
}

func TestTeacherSolveRejectsBadInput(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	x, _ := torch.Zeros(s, []int64{1, 2, 4, 2, 2}, torch.Float32, torch.CPU)
	for _, c := range []struct {
		sigmas, guidance []float64
		want             string
	}{
		{[]float64{1}, ones(2), "at least 2"},
		{[]float64{1, 2}, ones(2), "decreasing"},
		{[]float64{2, 1}, ones(3), "3 guidance scales for 2 frames"},
	} {
		var err error
		func() {
			defer torch.Recover(&err)
			TeacherSolve(s, &gaussian{}, x, c.sigmas, c.guidance)
		}()
		require.ErrorContains(t, err, c.want)
	}
}

// gaussData is the exact denoiser of data drawn elementwise from
// N(mean, v): D(x; σ) = mean + v/(v + σ²)·(x − mean). It records the inputs
// of each call.
type gaussData struct {
	mean  *torch.Tensor
	v     float64
	calls []denoiseCall
}

type denoiseCall struct {
	x     []float32
	sigma []float32
	cond  bool
}

func (g *gaussData) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	xv, err := x.Float32s()
	if err != nil {
		torch.Failf("gauss", "%v", err)
	}
	sv, err := sigma.Float32s()
	if err != nil {
		torch.Failf("gauss", "%v", err)
	}
	g.calls = append(g.calls, denoiseCall{x: xv, sigma: sv, cond: cond})
	sg := s.Reshape(s.Cast(sigma, torch.Float32), x.Size(0), 1, 1, 1, 1)
	k := s.RDiv(g.v, s.AddScalar(s.Square(sg), g.v))
	return s.Add(g.mean, s.Mul(k, s.Sub(s.Cast(x, torch.Float32), g.mean)))
}

// at is D(x; σ) in float64.
func (g *gaussData) at(mean, x []float64, sigma float64) []float64 {
	k := g.v / (g.v + sigma*sigma)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = mean[i] + k*(x[i]-mean[i])
	}
	return out
}

func f64(t *testing.T, x *torch.Tensor) []float64 {
	t.Helper()
	v := values(t, x)
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// relTo is ‖got − want‖/‖want‖.
func relTo(got []float32, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - w
		num += d * d
		den += w * w
	}
	return math.Sqrt(num / den)
}

// Multistep consistency sampling and the Time Travel Sampler on the exact
// denoiser of Gaussian data, against the samplers written out in float64:
// x = σ_0·ε; x̂0 = D(x, σ_n); with TTS x' = x̂0 + σ'_n·ε' (ε' fresh, or the
// implied noise (x − x̂0)/σ_n) and x̂0 = D(x', σ'_n); x = x̂0 + σ_{n+1}·ε_n.
// Fresh noise comes from the generator, travel before step. Each call's
// input and level are checked, and the two kinds of travel noise must give
// different samples.
func TestConsistencySamplers(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(3)
	defer g.Close()
	shape := []int64{1, 3, 4, 2, 2}
	mean, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	noise, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	mv, eps := f64(t, mean), f64(t, noise)
	const seed = 9
	check := func(name string, d *gaussData, got *torch.Tensor, sigmas, travel []float64, implied bool) []float32 {
		t.Helper()
		ref, _ := torch.NewGenerator(seed)
		defer ref.Close()
		fresh := func() []float64 {
			e, err := ref.Randn(s, shape, torch.Float32, torch.CPU)
			require.NoError(t, err)
			return f64(t, e)
		}
		x := make([]float64, len(eps))
		for i := range eps {
			x[i] = sigmas[0] * eps[i]
		}
		call := 0
		expect := func(x []float64, sigma float64) []float64 {
			t.Helper()
			require.Less(t, call, len(d.calls), "%s: too few denoiser calls", name)
			c := d.calls[call]
			call++
			require.True(t, c.cond, "%s call %d: the conditional branch", name, call)
			require.InDelta(t, sigma, c.sigma[0], 1e-6*sigma, "%s call %d: σ", name, call)
			require.Less(t, relTo(c.x, x), 1e-5, "%s call %d: the denoiser's input", name, call)
			return d.at(mv, x, sigma)
		}
		var x0 []float64
		for n, sg := range sigmas {
			x0 = expect(x, sg)
			if travel != nil {
				var e []float64
				if implied {
					e = make([]float64, len(x))
					for i := range x {
						e[i] = (x[i] - x0[i]) / sg
					}
				} else {
					e = fresh()
				}
				xt := make([]float64, len(x))
				for i := range x {
					xt[i] = x0[i] + travel[n]*e[i]
				}
				x0 = expect(xt, travel[n])
			}
			if n+1 < len(sigmas) {
				e := fresh()
				for i := range x {
					x[i] = x0[i] + sigmas[n+1]*e[i]
				}
			}
		}
		require.Len(t, d.calls, call, "%s: denoiser calls", name)
		out := values(t, got)
		rel := relTo(out, x0)
		t.Logf("%s: %d calls, relative error %.3g against the sampler in float64", name, call, rel)
		require.Less(t, rel, 1e-5, name)
		return out
	}
	for _, n := range []int{1, 2, 4} {
		sigmas := KarrasSigmas(n, 0.002, 80, 7)
		d := &gaussData{mean: mean, v: 0.25}
		sg, _ := torch.NewGenerator(seed)
		runOK(t, func() {
			out := SampleConsistency(s, d, noise, sigmas, sg, ConsistencyOptions{}, nil)
			check(fmt.Sprintf("multistep n=%d", n), d, out, sigmas, nil, false)
		})
		sg.Close()
		require.Len(t, d.calls, n, "multistep NFE")
		var samples [2][]float32
		for i, implied := range []bool{false, true} {
			d := &gaussData{mean: mean, v: 0.25}
			steps := 0
			stepSigmas, travel := TTSSchedule(n, 0.002, 80, 7)
			sg, _ := torch.NewGenerator(seed)
			runOK(t, func() {
				out := SampleTTS(s, d, noise, stepSigmas, sg, ConsistencyOptions{},
					TTSOptions{TravelSigmas: travel, ImpliedNoise: implied},
					func(int, *torch.Tensor) { steps++ })
				samples[i] = check(fmt.Sprintf("TTS n=%d implied=%v", n, implied), d, out, stepSigmas, travel, implied)
			})
			sg.Close()
			require.Len(t, d.calls, 2*n, "TTS NFE")
			require.Equal(t, n, steps)
		}
		apart := relTo(samples[0], f64s(samples[1]))
		t.Logf("TTS n=%d: fresh and implied travel noise differ by %.3g", n, apart)
		require.Greater(t, apart, 1e-3, "fresh and implied travel noise give the same sample")
	}
	// Travel levels must lie below each step's level.
	var err error
	func() {
		defer torch.Recover(&err)
		SampleTTS(s, &gaussData{mean: mean, v: 0.25}, noise, []float64{5}, g, ConsistencyOptions{}, TTSOptions{TravelSigmas: []float64{6}}, nil)
	}()
	require.ErrorContains(t, err, "below")
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// LCM's boundary: f = c_s·x + c_o·D, → x as σ → 0 and → D for large σ.
func TestConsistencyLCMBoundary(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(4)
	defer g.Close()
	data, _ := g.Randn(s, []int64{2, 1, 4, 2, 2}, torch.Float32, torch.CPU)
	x, _ := g.Randn(s, []int64{2, 1, 4, 2, 2}, torch.Float32, torch.CPU)
	sig, _ := torch.FromFloat32(s, []float32{0.3, 1e-6}, []int64{2}, torch.Float32, torch.CPU)
	runOK(t, func() {
		f := values(t, Consistency(s, &constant{x0: data}, x, sig, ConsistencyOptions{LCMBoundary: true}))
		xs, ds := values(t, x), values(t, data)
		per := len(xs) / 2
		ss := 10 * 0.3
		cs, co := 0.25/(ss*ss+0.25), ss/math.Sqrt(ss*ss+0.25)
		for i := range per {
			require.InDelta(t, cs*float64(xs[i])+co*float64(ds[i]), f[i], 1e-5)
			require.InDelta(t, xs[per+i], f[per+i], 1e-4) // σ → 0: f = x
		}
		plain := values(t, Consistency(s, &constant{x0: data}, x, sig, ConsistencyOptions{}))
		require.Equal(t, ds, plain)
	})
}
