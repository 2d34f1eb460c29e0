package solver

import (
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

func TestConsistencySamplers(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(3)
	defer g.Close()
	data, _ := g.Randn(s, []int64{1, 3, 4, 2, 2}, torch.Float32, torch.CPU)
	noise, _ := g.Randn(s, []int64{1, 3, 4, 2, 2}, torch.Float32, torch.CPU)
	want := values(t, data)
	for _, n := range []int{1, 2, 4} {
		sigmas := KarrasSigmas(n, 0.002, 80, 7)
		d := &constant{x0: data}
		runOK(t, func() {
			require.Equal(t, want, values(t, SampleConsistency(s, d, noise, sigmas, g, ConsistencyOptions{}, nil)))
		})
		require.Equal(t, n, d.calls, "multistep NFE")
		for _, implied := range []bool{false, true} {
			d := &constant{x0: data}
			steps := 0
			stepSigmas, travel := TTSSchedule(n, 0.002, 80, 7)
			runOK(t, func() {
				out := SampleTTS(s, d, noise, stepSigmas, g, ConsistencyOptions{},
					TTSOptions{TravelSigmas: travel, ImpliedNoise: implied},
					func(int, *torch.Tensor) { steps++ })
				require.Equal(t, want, values(t, out))
			})
			require.Equal(t, 2*n, d.calls, "TTS NFE")
			require.Equal(t, n, steps)
		}
	}
	// Travel levels must lie below each step's level.
	var err error
	func() {
		defer torch.Recover(&err)
		SampleTTS(s, &constant{x0: data}, noise, []float64{5}, g, ConsistencyOptions{}, TTSOptions{TravelSigmas: []float64{6}}, nil)
	}()
	require.ErrorContains(t, err, "below")
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
