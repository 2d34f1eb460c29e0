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

// float64s is x's values in float64 (logical order, whatever the layout).
func float64s(t *testing.T, x *Tensor) []float64 {
	t.Helper()
	v := vals(t, x)
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

// relL2To is ‖got − want‖/‖want‖ of a tensor against float64 values.
func relL2To(t *testing.T, got *Tensor, want []float64) float64 {
	t.Helper()
	g := vals(t, got)
	require.Len(t, g, len(want))
	var num, den float64
	for i, w := range want {
		d := float64(g[i]) - w
		num += d * d
		den += w * w
	}
	return math.Sqrt(num / math.Max(den, 1e-30))
}

// groupNormDef is act(GroupNorm(x + bias)) from its definition, in
// float64: x [N, C, spatial...] in logical order, bias nil, [C] or [N, C],
// the biased variance of each group of C/groups channels.
func groupNormDef(x []float64, shape []int64, groups int64, w, b, bias []float64, eps float64, silu bool) []float64 {
	n, ch := shape[0], shape[1]
	sp := int64(len(x)) / (n * ch)
	per := ch / groups
	in := func(i, c, j int64) float64 {
		v := x[(i*ch+c)*sp+j]
		switch int64(len(bias)) {
		case ch:
			v += bias[c]
		case n * ch:
			v += bias[i*ch+c]
		}
		return v
	}
	out := make([]float64, len(x))
	for i := range n {
		for g := range groups {
			var sum, sq float64
			for c := g * per; c < (g+1)*per; c++ {
				for j := range sp {
					v := in(i, c, j)
					sum += v
					sq += v * v
				}
			}
			m := float64(per * sp)
			mean := sum / m
			inv := 1 / math.Sqrt(sq/m-mean*mean+eps)
			for c := g * per; c < (g+1)*per; c++ {
				for j := range sp {
					y := (in(i, c, j)-mean)*inv*w[c] + b[c]
					if silu {
						y /= 1 + math.Exp(-y)
					}
					out[(i*ch+c)*sp+j] = y
				}
			}
		}
	}
	return out
}

// launched is how many fused CUDA kernels f ran.
func launched(f func()) int64 {
	before := FusedKernelLaunches()
	f()
	return FusedKernelLaunches() - before
}

// The fused operations equal their definitions computed in float64 from
// the same (rounded) inputs, in float32 (and, on CUDA, in float16 and
// bfloat16 to their rounding), in the default and the channels-last
// layouts, under either GroupNorm mode (libtorch's kernels or the split
// reductions) for their operator paths; and on CUDA, without an autograd
// graph to record, each op runs its own kernels: GroupNormAct two (the
// statistics, then the affine pass), Residual, GEGLU and the channels-last
// nearest ×2 upsampling one each, where the layout suits the kernels, and
// none where it does not.
func TestFusedOpsMatchDefinitions(t *testing.T) {
	dev := fusedDevice()
	kernels := dev.CUDA && FusedKernelsBuilt()
	t.Logf("device %s, fused kernels %v", dev, kernels)
	mode, err := GroupNormModeNow()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, SetGroupNormMode(mode)) })
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
	const groups, eps = 8, 1e-5
	for _, gm := range []GroupNormMode{GroupNormNative, GroupNormSplitAlways} {
		require.NoError(t, SetGroupNormMode(gm))
		for _, dt := range dtypes {
			tol := map[DType]float64{Float32: 1e-5, Float16: 2e-3, BFloat16: 1.5e-2}[dt]
			// The kernels take whole 16-byte vectors of one channel, or of
			// adjacent channels in the channels-last layout.
			v := map[DType]int64{Float32: 4, Float16: 8, BFloat16: 8}[dt]
			for _, shape := range [][]int64{{2, 64, 6, 10}, {2, 32, 3, 4, 8}, {1, 16, 5, 3}, {300, 256, 2, 4}} {
				for _, last := range []bool{false, true} {
					n, ch := shape[0], shape[1]
					x := s.AddScalar(s.MulScalar(randn(dt, shape...), 2), 3)
					if last {
						x = s.ChannelsLast(x)
					}
					w, b := randn(dt, ch), randn(dt, ch)
					bc, bnc := randn(dt, ch), randn(dt, n, ch)
					name := fmt.Sprintf("%v %v channels-last=%v group-norm-mode=%d", dt, shape, last, gm)
					spatial := x.Numel() / (n * ch)
					fits := kernels && ((last && ch%v == 0) || (!last && spatial%v == 0))
					want := func(per int64) int64 {
						if fits {
							return per
						}
						return 0
					}
					xv, wv, bv := float64s(t, x), float64s(t, w), float64s(t, b)

					// GroupNorm itself, the operator every layer uses.
					def := groupNormDef(xv, shape, groups, wv, bv, nil, eps, false)
					gn := s.GroupNorm(s.Cast(x, Float32), groups, s.Cast(w, Float32), s.Cast(b, Float32), eps)
					require.Less(t, relL2To(t, gn, def), 1e-5, "%s group_norm", name)

					for _, bias := range []*Tensor{nil, bc, bnc} {
						var biasv []float64
						if bias != nil {
							biasv = float64s(t, bias)
						}
						for _, silu := range []bool{false, true} {
							def := groupNormDef(xv, shape, groups, wv, bv, biasv, eps, silu)
							var got *Tensor
							k := launched(func() { got = s.GroupNormAct(x, groups, w, b, eps, bias, silu) })
							what := fmt.Sprintf("%s group_norm_act bias=%v silu=%v", name, bias != nil, silu)
							require.Equal(t, x.Strides(), got.Strides(), "%s: the output keeps the layout", what)
							require.Equal(t, dt, got.DType(), what)
							require.Less(t, relL2To(t, got, def), tol, what)
							require.Equal(t, want(2), k, "%s: fused kernels launched", what)
						}
					}

					h := randn(dt, shape...)
					if last {
						h = s.ChannelsLast(h)
					}
					alpha := randn(dt, 1)
					hv, bcv, av := float64s(t, h), float64s(t, bc), float64s(t, alpha)[0]
					res, plain := make([]float64, len(xv)), make([]float64, len(xv))
					for i := range xv {
						c := (int64(i) / spatial) % ch
						res[i] = xv[i] + av*(hv[i]+bcv[c])
						plain[i] = xv[i] + hv[i]
					}
					var got *Tensor
					k := launched(func() { got = s.Residual(x, h, bc, alpha) })
					require.Less(t, relL2To(t, got, res), tol, "%s residual", name)
					require.Equal(t, want(1), k, "%s residual: fused kernels launched", name)
					k = launched(func() { got = s.Residual(x, h, nil, nil) })
					require.Less(t, relL2To(t, got, plain), tol, "%s residual without bias", name)
					require.Equal(t, want(1), k, "%s residual without bias: fused kernels launched", name)

					if len(shape) == 4 {
						// Nearest ×2: output pixel (y, x) is input pixel (y/2, x/2).
						hh, ww := shape[2], shape[3]
						up := make([]float64, 0, 4*len(xv))
						for i := range n * ch {
							for y := range 2 * hh {
								for xx := range 2 * ww {
									up = append(up, xv[i*hh*ww+(y/2)*ww+xx/2])
								}
							}
						}
						k := launched(func() { got = s.UpsampleNearest(x, 2*hh, 2*ww) })
						require.Zero(t, relL2To(t, got, up), "%s upsample", name)
						require.Equal(t, want(1)*map[bool]int64{false: 0, true: 1}[last], k, "%s upsample: fused kernels launched", name)
					}
				}
			}
			// GEGLU on a last dimension that suits the kernel (D a multiple
			// of the vector width) and one that does not.
			for _, d := range []int64{3 * v, v + 1} {
				hg := randn(dt, 3, 5, 2*d)
				hv := float64s(t, hg)
				def := make([]float64, 0, len(hv)/2)
				for r := 0; r < len(hv); r += int(2 * d) {
					for j := range int(d) {
						a, gate := hv[r+j], hv[r+int(d)+j]
						def = append(def, a*0.5*gate*(1+math.Erf(gate/math.Sqrt2)))
					}
				}
				var got *Tensor
				k := launched(func() { got = s.GEGLU(hg) })
				require.Equal(t, []int64{3, 5, d}, got.Shape())
				require.Less(t, relL2To(t, got, def), tol, "%v geglu D=%d", dt, d)
				wantK := int64(0)
				if kernels && d%v == 0 {
					wantK = 1
				}
				require.Equal(t, wantK, k, "%v geglu D=%d: fused kernels launched", dt, d)
			}
		}
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
