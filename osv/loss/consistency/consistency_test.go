package consistency

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// gaussData is the exact denoiser of data drawn elementwise from
// N(mean, v), a mean for each branch (cond, uncond):
// D(x; σ) = mean + v/(v + σ²)·(x − mean), then w·D + b for a weight w
// that may be trainable. It records the inputs of each call.
type gaussData struct {
	cond, uncond *torch.Tensor
	v            float64
	w            *torch.Tensor // nil: 1
	b            float64
	calls        []call
}

type call struct {
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
	g.calls = append(g.calls, call{x: xv, sigma: sv, cond: cond})
	mean := g.uncond
	if cond {
		mean = g.cond
	}
	sg := s.Reshape(s.Cast(sigma, torch.Float32), x.Size(0), 1, 1, 1, 1)
	k := s.RDiv(g.v, s.AddScalar(s.Square(sg), g.v))
	d := s.Add(mean, s.Mul(k, s.Sub(s.Cast(x, torch.Float32), mean)))
	if g.w != nil {
		d = s.Mul(d, g.w)
	}
	return s.AddScalar(d, g.b)
}

// at is D(x; σ) before w and b, in float64.
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
	v, err := x.Float32s()
	require.NoError(t, err)
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

func run(t *testing.T, f func()) {
	t.Helper()
	var err error
	func() {
		defer torch.Recover(&err)
		f()
	}()
	require.NoError(t, err)
}

func item(t *testing.T, x *torch.Tensor) float64 {
	t.Helper()
	v, err := x.Item()
	require.NoError(t, err)
	return v
}

// The loss on the exact denoisers of Gaussian data (the teacher's two
// branches of different means, so that guidance matters) against OSV's
// definition written out in float64: x_n = x0 + σ_n·ε, k guided Euler steps
// of the teacher, the target f_θ⁻(x̂_{n+k}, σ_{n+k}), the student's
// f_θ(x_n, σ_n), their mean pseudo-Huber distance and its gradient in the
// student's weight; every denoiser call is checked for its input, level
// and branch. With and without LCM's boundary condition.
func TestConsistencyLoss(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(1)
	defer g.Close()
	shape := []int64{2, 2, 4, 3, 3}
	x0, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	eps, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	mc, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	mu := s.MulScalar(mc, 0.5)
	x0v, epsv, mcv, muv := f64(t, x0), f64(t, eps), f64(t, mc), f64(t, mu)
	frames, per := shape[1], shape[2]*shape[3]*shape[4]
	frame := func(i int) int { return int((int64(i) / per) % frames) }

	sigmas := solver.KarrasSigmas(6, 0.002, 80, 7)[1:5] // σ_n … σ_{n+k}, k = 3
	k := len(sigmas) - 1
	guidance := []float64{1, 2.5}
	const v, c, b = 0.25, 0.1, 0.3
	for _, lcm := range []bool{false, true} {
		opts := solver.ConsistencyOptions{LCMBoundary: lcm}
		// f = c_s·x + c_o·D (LCM: σ_d 0.5, timestep scale 10), else f = D.
		f := func(x, d []float64, sigma float64) []float64 {
			cs, co := 0.0, 1.0
			if lcm {
				ss := 10 * sigma
				cs, co = 0.25/(ss*ss+0.25), ss/math.Sqrt(ss*ss+0.25)
			}
			out := make([]float64, len(x))
			for i := range x {
				out[i] = cs*x[i] + co*d[i]
			}
			return out
		}
		w, _ := torch.Full(nil, []int64{1}, 1, torch.Float32, torch.CPU)
		require.NoError(t, w.SetRequiresGrad(true))
		teacher := &gaussData{cond: mc, uncond: mu, v: v}
		target := &gaussData{cond: mc, uncond: mu, v: v}
		student := &gaussData{cond: mc, uncond: mu, v: v, w: w, b: b} // off by b everywhere
		in := Inputs{Student: student, Target: target, Teacher: teacher, Data: x0, Noise: eps,
			Sigmas: sigmas, Guidance: guidance, HuberC: c, Consistency: opts}
		var out Output
		run(t, func() { out = Apply(s, in) })

		// OSV's definition.
		xn := make([]float64, len(x0v))
		for i := range xn {
			xn[i] = x0v[i] + sigmas[0]*epsv[i]
		}
		checkCall := func(who string, cl call, x []float64, sigma float64, cond bool) {
			t.Helper()
			require.Equal(t, cond, cl.cond, "%s: branch", who)
			require.Len(t, cl.sigma, int(shape[0]), "%s: σ per clip", who)
			for _, sg := range cl.sigma {
				require.InDelta(t, sigma, sg, 1e-6*sigma, "%s: σ", who)
			}
			require.Less(t, relTo(cl.x, x), 1e-5, "%s: input", who)
		}
		require.Len(t, teacher.calls, 2*k, "k guided teacher steps, two branches each")
		x := xn
		var real []float64
		for j := range k {
			var du, dc []float64
			for _, cl := range teacher.calls[2*j : 2*j+2] {
				checkCall(fmt.Sprintf("teacher step %d", j), cl, x, sigmas[j], cl.cond)
				if cl.cond {
					dc = teacher.at(mcv, x, sigmas[j])
				} else {
					du = teacher.at(muv, x, sigmas[j])
				}
			}
			require.NotNil(t, dc, "teacher step %d: the conditional branch", j)
			require.NotNil(t, du, "teacher step %d: the unconditional branch", j)
			next := make([]float64, len(x))
			real = make([]float64, len(x))
			for i := range x {
				real[i] = du[i] + guidance[frame(i)]*(dc[i]-du[i])
				next[i] = x[i] + (sigmas[j+1]-sigmas[j])*(x[i]-real[i])/sigmas[j]
			}
			x = next
		}
		sol := x
		require.Len(t, target.calls, 1)
		checkCall("target", target.calls[0], sol, sigmas[k], true)
		require.Len(t, student.calls, 1)
		checkCall("student", student.calls[0], xn, sigmas[0], true)
		tgt := f(sol, target.at(mcv, sol, sigmas[k]), sigmas[k])
		ds := student.at(mcv, xn, sigmas[0])
		sd := make([]float64, len(ds))
		for i := range ds {
			sd[i] = ds[i] + b
		}
		fake := f(xn, sd, sigmas[0])
		co := 1.0
		if lcm {
			ss := 10 * sigmas[0]
			co = ss / math.Sqrt(ss*ss+0.25)
		}
		var want, wantGrad float64
		for i := range fake {
			d := fake[i] - tgt[i]
			want += math.Sqrt(d*d+c*c) - c
			wantGrad += d / math.Sqrt(d*d+c*c) * co * ds[i] // ∂fake/∂w = c_o·D
		}
		want /= float64(len(fake))
		wantGrad /= float64(len(fake))

		name := fmt.Sprintf("lcm=%v", lcm)
		for _, r := range []struct {
			what string
			got  *torch.Tensor
			want []float64
		}{{"solution", out.TeacherSolution, sol}, {"real", out.Real, real}, {"target", out.Target, tgt}, {"fake", out.Fake, fake}} {
			got, err := r.got.Float32s()
			require.NoError(t, err)
			rel := relTo(got, r.want)
			t.Logf("%s %s: relative error %.3g against the definition", name, r.what, rel)
			require.Less(t, rel, 1e-5, "%s %s", name, r.what)
		}
		loss := item(t, out.Loss)
		t.Logf("%s loss %.6g, definition %.6g", name, loss, want)
		require.InDelta(t, want, loss, 1e-5*want, name)

		// The gradient reaches the student's weight, and only its output
		// carries one.
		require.NoError(t, torch.Backward(out.Loss))
		gw, err := w.Grad(s)
		require.NoError(t, err)
		require.InDelta(t, wantGrad, item(t, gw), 1e-5*math.Abs(wantGrad), name)
		require.False(t, out.Target.RequiresGrad())
		require.False(t, out.Real.RequiresGrad())
		require.False(t, out.TeacherSolution.RequiresGrad())
		require.True(t, out.Fake.RequiresGrad())

		// λ(σ_n) scales the loss.
		in.Weight = func(sg float64) float64 {
			require.Equal(t, sigmas[0], sg, "λ at σ_n")
			return 2
		}
		run(t, func() { out = Apply(s, in) })
		require.InDelta(t, 2*want, item(t, out.Loss), 2e-5*want, name)
		w.Free()
	}

	var err error
	func() {
		defer torch.Recover(&err)
		in := Inputs{Student: &gaussData{cond: mc, uncond: mu, v: v}, Target: &gaussData{cond: mc, uncond: mu, v: v},
			Teacher: &gaussData{cond: mc, uncond: mu, v: v}, Data: x0, Noise: eps, Sigmas: sigmas[:1], Guidance: guidance}
		Apply(s, in)
	}()
	require.ErrorContains(t, err, "k ≥ 1")
}
