package torch

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// AdamW on f(p) = Σ (p − t)² against the update written out in float64.
func TestAdamWMatchesTheFormula(t *testing.T) {
	s := NewScope()
	defer s.Close()
	p0 := []float32{1, -2, 0.5}
	target := []float32{0.3, 0.1, -1}
	p, _ := FromFloat32(nil, p0, []int64{3}, Float32, CPU)
	defer p.Free()
	require.NoError(t, p.SetRequiresGrad(true))
	tt, _ := FromFloat32(s, target, []int64{3}, Float32, CPU)
	const lr, b1, b2, eps, wd = 0.1, 0.9, 0.99, 1e-8, 0.01
	opt, err := NewAdamW([]*Tensor{p}, lr, b1, b2, eps, wd)
	require.NoError(t, err)
	defer opt.Close()

	ref := []float64{1, -2, 0.5}
	m, v := make([]float64, 3), make([]float64, 3)
	for step := 1; step <= 5; step++ {
		require.NoError(t, ZeroGrads([]*Tensor{p}))
		c := s.Child()
		require.NoError(t, Backward(c.Sum(c.Square(c.Sub(p, tt)), false)))
		c.Close()
		require.NoError(t, opt.Step())
		for i := range ref {
			g := 2 * (ref[i] - float64(target[i]))
			ref[i] *= 1 - lr*wd
			m[i] = b1*m[i] + (1-b1)*g
			v[i] = b2*v[i] + (1-b2)*g*g
			mh := m[i] / (1 - math.Pow(b1, float64(step)))
			vh := v[i] / (1 - math.Pow(b2, float64(step)))
			ref[i] -= lr * mh / (math.Sqrt(vh) + eps)
		}
		got := vals(t, p)
		for i := range ref {
			require.InDelta(t, ref[i], got[i], 1e-5, "step %d", step)
		}
	}
	require.Equal(t, int64(5), opt.Steps())

	// Restoring the state into a fresh optimiser continues identically.
	q, _ := FromFloat32(nil, vals(t, p), []int64{3}, Float32, CPU)
	defer q.Free()
	require.NoError(t, q.SetRequiresGrad(true))
	opt2, err := NewAdamW([]*Tensor{q}, lr, b1, b2, eps, wd)
	require.NoError(t, err)
	defer opt2.Close()
	require.NoError(t, opt2.Restore(opt.State(), opt.Steps()))
	require.NoError(t, ZeroGrads([]*Tensor{p}))
	for _, x := range []*Tensor{p, q} {
		c := s.Child()
		require.NoError(t, Backward(c.Sum(c.Square(c.Sub(x, tt)), false)))
		c.Close()
	}
	require.NoError(t, opt.Step())
	require.NoError(t, opt2.Step())
	require.Equal(t, vals(t, p), vals(t, q))
}

func TestClipGradNormAndEMA(t *testing.T) {
	s := NewScope()
	defer s.Close()
	a, _ := FromFloat32(nil, []float32{3, 0}, []int64{2}, Float32, CPU)
	b, _ := FromFloat32(nil, []float32{0}, []int64{1}, Float32, CPU)
	defer a.Free()
	defer b.Free()
	require.NoError(t, a.SetRequiresGrad(true))
	require.NoError(t, b.SetRequiresGrad(true))
	// loss = a·(3, 0) + 4b: gradients (3, 0) and 4, global norm 5.
	k, _ := FromFloat32(s, []float32{3, 0}, []int64{2}, Float32, CPU)
	require.NoError(t, Backward(s.Add(s.Sum(s.Mul(a, k), false), s.MulScalar(s.Sum(b, false), 4))))
	n, err := ClipGradNorm([]*Tensor{a, b}, 1)
	require.NoError(t, err)
	require.InDelta(t, 5, n, 1e-6) // √(3² + 4²)
	ga, _ := a.Grad(s)
	gb, _ := b.Grad(s)
	require.InDeltaSlice(t, []float32{0.6, 0}, vals(t, ga), 1e-5)
	require.InDeltaSlice(t, []float32{0.8}, vals(t, gb), 1e-5)

	// A NaN gradient is reported, not scaled away.
	nan, _ := FromFloat32(s, []float32{float32(math.NaN())}, []int64{1}, Float32, CPU)
	require.NoError(t, b.ZeroGrad())
	require.NoError(t, Backward(s.Sum(s.Mul(b, nan), false)))
	n, err = ClipGradNorm([]*Tensor{a, b}, 1)
	require.NoError(t, err)
	require.False(t, Finite(n))

	dst, _ := FromFloat32(nil, []float32{1, 2}, []int64{2}, Float32, CPU)
	defer dst.Free()
	src, _ := FromFloat32(s, []float32{3, 6}, []int64{2}, Float32, CPU)
	require.NoError(t, EMA([]*Tensor{dst}, []*Tensor{src}, 0.75))
	require.InDeltaSlice(t, []float32{1.5, 3}, vals(t, dst), 1e-6)
}

func TestGeneratorStateRoundTrip(t *testing.T) {
	s := NewScope()
	defer s.Close()
	g, _ := NewGenerator(11)
	defer g.Close()
	state, err := g.State(s)
	require.NoError(t, err)
	a, _ := g.Randn(s, []int64{5}, Float32, CPU)
	require.NoError(t, g.SetState(state))
	b, _ := g.Randn(s, []int64{5}, Float32, CPU)
	require.Equal(t, vals(t, a), vals(t, b))
}
