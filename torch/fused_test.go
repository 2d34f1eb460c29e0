package torch

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// fusedDevice is the first GPU when there is one, else the CPU.
func fusedDevice() Device {
	if cb.CUDADeviceCount() > 0 {
		return Device{CUDA: true}
	}
	return CPU
}

func relL2(t *testing.T, got, want *Tensor) float64 {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape())
	g, w := vals(t, got), vals(t, want)
	var num, den float64
	for i := range w {
		d := float64(g[i]) - float64(w[i])
		num += d * d
		den += float64(w[i]) * float64(w[i])
	}
	return math.Sqrt(num / math.Max(den, 1e-30))
}

// The fused operations equal their definitions from libtorch's operators
// in float32 (and, on CUDA, in float16 and bfloat16 to their rounding),
// in the default and the channels-last layouts, and their kernels run on
// CUDA whenever no autograd graph is recorded.
func TestFusedOpsMatchDefinitions(t *testing.T) {
	dev := fusedDevice()
	g, err := NewGenerator(5)
	require.NoError(t, err)
	defer g.Close()
	s := NewScope()
	defer s.Close()
	randn := func(dt DType, shape ...int64) *Tensor {
		x, err := g.Randn(s, shape, Float32, dev)
		require.NoError(t, err)
		return s.Cast(x, dt)
	}
	dtypes := []DType{Float32}
	if dev.CUDA {
		dtypes = append(dtypes, Float16, BFloat16)
	}
	for _, dt := range dtypes {
		tol := map[DType]float64{Float32: 1e-5, Float16: 2e-3, BFloat16: 1.5e-2}[dt]
		for _, shape := range [][]int64{{2, 64, 6, 10}, {2, 32, 3, 4, 8}, {1, 16, 5, 3}, {300, 256, 2, 4}} {
			for _, last := range []bool{false, true} {
				n, ch := shape[0], shape[1]
				x := s.AddScalar(s.MulScalar(randn(dt, shape...), 2), 3)
				if last {
					x = s.ChannelsLast(x)
				}
				w, b := randn(dt, ch), randn(dt, ch)
				bc, bnc := randn(dt, ch), randn(dt, n, ch)
				view := func(v *Tensor) *Tensor {
					sh := make([]int64, len(shape))
					for i := range sh {
						sh[i] = 1
					}
					sh[1] = ch
					if v.Dim() == 2 {
						sh[0] = n
					}
					return s.Reshape(v, sh...)
				}
				name := fmt.Sprintf("%v %v channels-last=%v", dt, shape, last)
				before := FusedKernelLaunches()
				for _, bias := range []*Tensor{nil, bc, bnc} {
					for _, silu := range []bool{false, true} {
						in := x
						if bias != nil {
							in = s.Add(x, view(bias))
						}
						want := s.GroupNorm(s.Cast(in, Float32), 8, s.Cast(w, Float32), s.Cast(b, Float32), 1e-5)
						if silu {
							want = s.SiLU(want)
						}
						got := s.GroupNormAct(x, 8, w, b, 1e-5, bias, silu)
						require.Equal(t, x.Strides(), got.Strides(), "%s: the output keeps the layout", name)
						require.Less(t, relL2(t, s.Cast(got, Float32), want), tol, "%s group_norm_act bias=%v silu=%v", name, bias != nil, silu)
					}
				}
				h := randn(dt, shape...)
				if last {
					h = s.ChannelsLast(h)
				}
				alpha := randn(dt, 1)
				want := s.Add(s.Cast(x, Float32), s.Mul(s.Cast(alpha, Float32), s.Add(s.Cast(h, Float32), s.Cast(view(bc), Float32))))
				require.Less(t, relL2(t, s.Cast(s.Residual(x, h, bc, alpha), Float32), want), tol, "%s residual", name)
				want = s.Add(s.Cast(x, Float32), s.Cast(h, Float32))
				require.Less(t, relL2(t, s.Cast(s.Residual(x, h, nil, nil), Float32), want), tol, "%s residual without bias", name)
				if len(shape) == 4 {
					up := s.UpsampleNearest(x, 2*shape[2], 2*shape[3])
					require.Equal(t, vals(t, s.UpsampleNearest(s.Contiguous(x), 2*shape[2], 2*shape[3])), vals(t, s.Contiguous(up)), "%s upsample", name)
				}
				// The kernels take whole 16-byte vectors of one channel, or of
				// adjacent channels in the channels-last layout.
				v := map[DType]int64{Float32: 4, Float16: 8, BFloat16: 8}[dt]
				spatial := x.Numel() / (n * ch)
				if fits := (last && ch%v == 0) || (!last && spatial%v == 0); dev.CUDA && fits {
					require.Greater(t, FusedKernelLaunches(), before, "%s: the fused kernels ran", name)
				} else {
					require.Equal(t, before, FusedKernelLaunches(), "%s: no fused kernel", name)
				}
			}
		}
		hg := randn(dt, 3, 5, 2*24)
		parts := s.Chunk(s.Cast(hg, Float32), 2, -1)
		want := s.Mul(parts[0], s.GELU(parts[1]))
		require.Less(t, relL2(t, s.Cast(s.GEGLU(hg), Float32), want), tol, "%v geglu", dt)
	}
}

// With an autograd graph to record, the fused operations take libtorch's
// operators, and gradients reach every input.
func TestFusedOpsBackward(t *testing.T) {
	dev := fusedDevice()
	g, err := NewGenerator(6)
	require.NoError(t, err)
	defer g.Close()
	s := NewScope()
	defer s.Close()
	leaf := func(shape ...int64) *Tensor {
		x, err := g.Randn(s, shape, Float32, dev)
		require.NoError(t, err)
		require.NoError(t, x.SetRequiresGrad(true))
		return x
	}
	x, h, bias, alpha, w, b := leaf(2, 16, 4, 4), leaf(2, 16, 4, 4), leaf(16), leaf(1), leaf(16), leaf(16)
	hg := leaf(2, 3, 16)
	before := FusedKernelLaunches()
	y := s.GroupNormAct(x, 4, w, b, 1e-5, bias, true)
	r := s.Residual(y, h, bias, alpha)
	loss := s.Add(s.Sum(s.Square(r), false), s.Sum(s.GEGLU(hg), false))
	require.NoError(t, Backward(loss))
	require.Equal(t, before, FusedKernelLaunches(), "no fused kernel under autograd")
	for i, p := range []*Tensor{x, h, bias, alpha, w, b, hg} {
		gr, err := p.Grad(s)
		require.NoError(t, err, "input %d", i)
		require.Positive(t, vals(t, s.Sum(s.Abs(gr), false))[0], "input %d has a gradient", i)
	}
}

func TestFusedOpsRejectBadShapes(t *testing.T) {
	s := NewScope()
	defer s.Close()
	x, err := Zeros(s, []int64{2, 8, 3, 3}, Float32, CPU)
	require.NoError(t, err)
	odd, err := Zeros(s, []int64{5}, Float32, CPU)
	require.NoError(t, err)
	h, err := Zeros(s, []int64{2, 8, 3, 4}, Float32, CPU)
	require.NoError(t, err)
	try := func(f func()) error {
		var err error
		func() {
			defer Recover(&err)
			f()
		}()
		return err
	}
	require.ErrorContains(t, try(func() { s.GroupNormAct(x, 8, nil, nil, 1e-5, odd, true) }), "does not match 8 channels")
	require.ErrorContains(t, try(func() { s.GroupNormAct(x, 3, nil, nil, 1e-5, nil, true) }), "not divisible into 3 groups")
	require.ErrorContains(t, try(func() { s.Residual(x, h, nil, nil) }), "differ")
	require.ErrorContains(t, try(func() { s.Residual(x, x, nil, odd) }), "alpha must have one element")
	require.ErrorContains(t, try(func() { s.GEGLU(odd) }), "must be even")
}
