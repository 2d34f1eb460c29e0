package torch

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// layerNormDef is LayerNorm over the last dimension c of x from its
// definition, in float64 (w and b nil or [c]).
func layerNormDef(x []float64, c int, w, b []float64, eps float64) []float64 {
	out := make([]float64, len(x))
	for r := 0; r < len(x)/c; r++ {
		row := x[r*c : (r+1)*c]
		var mean, v float64
		for _, e := range row {
			mean += e
		}
		mean /= float64(c)
		for _, e := range row {
			v += (e - mean) * (e - mean)
		}
		rstd := 1 / math.Sqrt(v/float64(c)+eps)
		for j, e := range row {
			y := (e - mean) * rstd
			if w != nil {
				y *= w[j]
			}
			if b != nil {
				y += b[j]
			}
			out[r*c+j] = y
		}
	}
	return out
}

// LayerNorm with SetFusedLayerNorm equals its definition, with and without
// weights, in float32 (and on CUDA in bfloat16 and float16, to their
// rounding); on CUDA with the fused kernels built, each call where the
// kernel applies runs it once (narrow rows of 64 channels, the toy's;
// SVD's 320 and 1280; rows offset from zero), and a width that is not a
// whole number of vectors, or a call under autograd, runs libtorch's.
func TestFusedLayerNormMatchesDefinition(t *testing.T) {
	dev := fusedDevice()
	kernels := dev.CUDA && FusedKernelsBuilt()
	require.NoError(t, SetFusedLayerNorm(true))
	t.Cleanup(func() { require.NoError(t, SetFusedLayerNorm(false)) })
	g, err := NewGenerator(9)
	require.NoError(t, err)
	defer g.Close()
	s := NewScope()
	defer s.Close()
	randn := func(dt DType, offset float64, shape ...int64) *Tensor {
		x, err := g.Randn(s, shape, Float32, dev)
		require.NoError(t, err)
		if offset != 0 {
			x = s.AddScalar(x, offset)
		}
		return s.Cast(x, dt)
	}
	dtypes := []DType{Float32}
	if dev.CUDA {
		dtypes = append(dtypes, BFloat16, Float16)
	}
	for _, dt := range dtypes {
		tol := 2e-6
		if dt != Float32 {
			tol = 8e-3
		}
		for _, c := range []struct {
			shape  []int64
			offset float64
			affine bool
			fused  bool
		}{
			{[]int64{3, 5, 64}, 0, true, true},
			{[]int64{1031, 64}, 4, true, true},
			{[]int64{2, 7, 320}, 0, false, true},
			{[]int64{9, 1280}, 0.5, true, true},
			{[]int64{4, 24}, 0, true, true},
			{[]int64{4, 20}, 0, true, dt == Float32}, // 20 is a whole number of 4-wide vectors, not of 8-wide ones
			{[]int64{5, 6}, 0, true, false},
		} {
			n := c.shape[len(c.shape)-1]
			x := randn(dt, c.offset, c.shape...)
			var w, b *Tensor
			var wv, bv []float64
			if c.affine {
				w, b = randn(dt, 1, n), randn(dt, 0, n)
				wv, bv = float64s(t, w), float64s(t, b)
			}
			var y *Tensor
			k := launched(func() { y = s.LayerNorm(x, []int64{n}, w, b, 1e-5) })
			want := layerNormDef(float64s(t, x), int(n), wv, bv, 1e-5)
			require.Less(t, relL2To(t, y, want), tol, "%v %v offset %g affine %v", dt, c.shape, c.offset, c.affine)
			require.Equal(t, c.shape, y.Shape())
			if kernels {
				wantK := int64(0)
				if c.fused {
					wantK = 1
				}
				require.Equal(t, wantK, k, "%v %v: fused kernel launches", dt, c.shape)
			}
		}
	}

	// Under autograd libtorch's operator runs, and the gradient flows.
	x, err := g.Randn(s, []int64{4, 64}, Float32, dev)
	require.NoError(t, err)
	require.NoError(t, x.SetRequiresGrad(true))
	var y *Tensor
	require.Zero(t, launched(func() { y = s.LayerNorm(x, []int64{64}, nil, nil, 1e-5) }))
	require.NoError(t, Backward(s.Sum(s.Square(s.MulScalar(y, 1)), false)))
	gr, err := x.Grad(s)
	require.NoError(t, err)
	require.Equal(t, []int64{4, 64}, gr.Shape())
}
