package torch

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// foreachParams is a list of parameters of many shapes with gradients of
// a quadratic loss, made the same way for two optimisers.
func foreachParams(t *testing.T, dev Device, seed uint64) []*Tensor {
	t.Helper()
	g, err := NewGenerator(seed)
	require.NoError(t, err)
	defer g.Close()
	var ps []*Tensor
	for i, shape := range [][]int64{{3}, {4, 5}, {2, 3, 4}, {1}, {17}, {8, 8}, {2, 1, 3, 3}} {
		p, err := g.Randn(nil, shape, Float32, dev)
		require.NoError(t, err, "parameter %d", i)
		require.NoError(t, p.SetRequiresGrad(true))
		ps = append(ps, p)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.Free()
		}
	})
	return ps
}

// gradsOf sets each parameter's gradient to that of Σ c_i (p_i − 0.1 i)²·scale.
func gradsOf(t *testing.T, ps []*Tensor, scale float64) {
	t.Helper()
	require.NoError(t, ZeroGrads(ps))
	s := NewScope()
	defer s.Close()
	var loss *Tensor
	for i, p := range ps {
		term := s.MulScalar(s.Sum(s.Square(s.AddScalar(p, -0.1*float64(i))), false), scale*float64(i+1))
		if loss == nil {
			loss = term
		} else {
			loss = s.Add(loss, term)
		}
	}
	require.NoError(t, Backward(loss))
}

// The multi-tensor AdamW gives the per-parameter path's results: on the
// CPU bit for bit (the same operations in the same order), on CUDA within
// float32 rounding. A parameter without a gradient is left alone by both.
func TestForeachMatchesPerParameter(t *testing.T) {
	dev := fusedDevice()
	plain, multi := foreachParams(t, dev, 5), foreachParams(t, dev, 5)
	a, err := NewAdamW(plain, 0.05, 0.9, 0.99, 1e-8, 0.01)
	require.NoError(t, err)
	defer a.Close()
	b, err := NewAdamW(multi, 0.05, 0.9, 0.99, 1e-8, 0.01)
	require.NoError(t, err)
	defer b.Close()
	b.Foreach = true
	tol := 0.0
	if dev.CUDA {
		tol = 1e-6
	}
	for step := 1; step <= 6; step++ {
		scale := []float64{1, 50, 0.001}[step%3] // norms above and below the limit
		gradsOf(t, plain, scale)
		gradsOf(t, multi, scale)
		if step == 4 { // the third parameter has no gradient at this step
			require.NoError(t, plain[2].ZeroGrad())
			require.NoError(t, multi[2].ZeroGrad())
		}
		// The same clip for both, so that the optimisers see equal gradients.
		_, err := ClipGradNorm(plain, 1)
		require.NoError(t, err)
		_, err = ClipGradNorm(multi, 1)
		require.NoError(t, err)
		require.NoError(t, a.Step())
		require.NoError(t, b.Step())
		for i := range plain {
			x, y := float64s(t, plain[i]), float64s(t, multi[i])
			for j := range x {
				require.InDelta(t, x[j], y[j], tol*(1+math.Abs(x[j])), "step %d, parameter %d, value %d", step, i, j)
			}
		}
	}
	for name, m := range a.State() {
		x, y := float64s(t, m), float64s(t, b.State()[name])
		for j := range x {
			require.InDelta(t, x[j], y[j], tol*(1+math.Abs(x[j]))+1e-12, "%s[%d]", name, j)
		}
	}
}

// The multi-tensor gradient clip gives the per-parameter norm and scaled
// gradients, on the CPU to the bit and on CUDA to float32 rounding, above
// the limit and below it (then nothing changes).
func TestClipGradNormForeachMatchesPerParameter(t *testing.T) {
	dev := fusedDevice()
	tol := 0.0
	if dev.CUDA {
		tol = 1e-6
	}
	for _, scale := range []float64{50, 0.001} {
		plain, multi := foreachParams(t, dev, 8), foreachParams(t, dev, 8)
		gradsOf(t, plain, scale)
		gradsOf(t, multi, scale)
		n1, err := ClipGradNorm(plain, 1)
		require.NoError(t, err)
		n2, err := ClipGradNormForeach(multi, 1)
		require.NoError(t, err)
		require.InDelta(t, n1, n2, tol*n1, "scale %g: the norm", scale)
		if scale < 1 {
			require.Less(t, n1, 1.0)
		} else {
			require.Greater(t, n1, 1.0)
		}
		s := NewScope()
		for i := range plain {
			gx, err := plain[i].Grad(s)
			require.NoError(t, err)
			gy, err := multi[i].Grad(s)
			require.NoError(t, err)
			x, y := float64s(t, gx), float64s(t, gy)
			for j := range x {
				require.InDelta(t, x[j], y[j], tol*(1e-3+math.Abs(x[j])), "scale %g, parameter %d, value %d", scale, i, j)
			}
		}
		s.Close()
	}
}

// The multi-tensor paths refuse what the per-parameter ones refuse, and a
// list without gradients is left alone.
func TestForeachEdges(t *testing.T) {
	ps := foreachParams(t, CPU, 1)
	n, err := ClipGradNormForeach(ps, 1)
	require.NoError(t, err)
	require.Zero(t, n)
	o, err := NewAdamW(ps, 0.1, 0.9, 0.99, 1e-8, 0)
	require.NoError(t, err)
	o.Foreach = true
	before := float64s(t, ps[1])
	require.NoError(t, o.Step())
	require.Equal(t, before, float64s(t, ps[1]), "no gradient, no update")
	o.Close()
	require.ErrorContains(t, o.Step(), "adamw")
	released := foreachParams(t, CPU, 2)
	released[0].Free()
	_, err = ClipGradNormForeach(released, 1)
	require.ErrorContains(t, err, "clip_grad_norm")
	// A NaN gradient: the norm is returned, nothing scaled.
	gradsOf(t, ps, math.NaN())
	n, err = ClipGradNormForeach(ps, 1)
	require.NoError(t, err)
	require.True(t, math.IsNaN(n), fmt.Sprint(n))
}
