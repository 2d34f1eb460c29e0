package consistency

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// scaled is D(x; σ) = w·x0 + b for fixed data x0: a toy denoiser whose
// weight w may be trainable. It counts its calls.
type scaled struct {
	x0, w *torch.Tensor
	b     float64
	calls int
}

func (d *scaled) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	d.calls++
	return s.AddScalar(s.Mul(d.x0, d.w), d.b)
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

func TestConsistencyLoss(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(1)
	defer g.Close()
	x0, _ := g.Randn(s, []int64{1, 2, 4, 3, 3}, torch.Float32, torch.CPU)
	eps, _ := g.Randn(s, []int64{1, 2, 4, 3, 3}, torch.Float32, torch.CPU)
	one, _ := torch.Full(s, []int64{1}, 1, torch.Float32, torch.CPU)
	w, _ := torch.Full(nil, []int64{1}, 1, torch.Float32, torch.CPU)
	defer w.Free()
	require.NoError(t, w.SetRequiresGrad(true))

	teacher := &scaled{x0: x0, w: one}
	target := &scaled{x0: x0, w: one}
	student := &scaled{x0: x0, w: w, b: 0.3}       // off by 0.3 everywhere
	sigmas := solver.KarrasSigmas(4, 0.002, 80, 7) // k = 3
	in := Inputs{Student: student, Target: target, Teacher: teacher, Data: x0, Noise: eps,
		Sigmas: sigmas, Guidance: []float64{1, 2}, HuberC: 0.1}
	var out Output
	run(t, func() { out = Apply(s, in) })

	// Every element differs by 0.3: d = √(0.09 + c²) − c.
	want := math.Sqrt(0.09+0.01) - 0.1
	require.InDelta(t, want, item(t, out.Loss), 1e-6)
	require.Equal(t, 3, teacher.calls/2, "k guided teacher steps (two branches each)")
	require.Equal(t, 1, target.calls)
	require.Equal(t, 1, student.calls)
	// The teacher's data-returning denoiser makes its last estimate x0.
	xr, _ := out.Real.Float32s()
	xs, _ := x0.Float32s()
	require.InDeltaSlice(t, xs, xr, 1e-6)

	// The gradient reaches the student's weight: d/dw mean d(w·x0 + b, x0).
	require.NoError(t, torch.Backward(out.Loss))
	gw, err := w.Grad(s)
	require.NoError(t, err)
	require.NotNil(t, gw)
	var wantGrad float64
	for _, v := range xs {
		wantGrad += 0.3 / math.Sqrt(0.09+0.01) * float64(v)
	}
	wantGrad /= float64(len(xs))
	require.InDelta(t, wantGrad, item(t, gw), 1e-5)
	require.False(t, out.Target.RequiresGrad())
	require.False(t, out.Real.RequiresGrad())
	require.True(t, out.Fake.RequiresGrad())

	// λ(σ) scales the loss; a perfect student has zero loss.
	in.Weight = func(sg float64) float64 { return 2 }
	run(t, func() { out = Apply(s, in) })
	require.InDelta(t, 2*want, item(t, out.Loss), 1e-6)
	in.Student = &scaled{x0: x0, w: one}
	run(t, func() { out = Apply(s, in) })
	require.InDelta(t, 0, item(t, out.Loss), 1e-7)

	var err2 error
	func() {
		defer torch.Recover(&err2)
		in.Sigmas = sigmas[:1]
		Apply(s, in)
	}()
	require.ErrorContains(t, err2, "k ≥ 1")
}
