package torch

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"
)

func vals(t *testing.T, x *Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

func TestScopeReleasesEverything(t *testing.T) {
	start := Live()
	s := NewScope()
	a, err := FromFloat32(s, []float32{1, 2, 3, 4, 5, 6}, []int64{2, 3}, Float32, CPU)
	require.NoError(t, err)
	c := s.Child()
	b := c.Add(a, c.MulScalar(a, 2))
	kept := c.Keep(c.Sum(b, false, 1))
	c.Close()
	require.False(t, kept.Released())
	require.True(t, b.Released())
	require.Equal(t, []float32{18, 45}, vals(t, kept))
	s.Close()
	s.Close()
	require.True(t, kept.Released())
	require.Equal(t, start, Live())
}

func TestOpErrorIsRecoveredWithPath(t *testing.T) {
	start := Live()
	run := func() (err error) {
		defer Recover(&err)
		s := NewScope()
		defer s.Close()
		x, _ := Zeros(s, []int64{1, 3, 8, 8}, Float32, CPU)
		w, _ := Zeros(s, []int64{4, 5, 3, 3}, Float32, CPU)
		func() {
			defer Annotate("down_blocks.0.resnets.0.conv1")
			s.Conv(x, w, nil, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1)
		}()
		return nil
	}
	err := run()
	require.Error(t, err)
	require.Contains(t, err.Error(), "down_blocks.0.resnets.0.conv1: conv2d: ")
	require.Contains(t, err.Error(), "channels")
	require.NotContains(t, err.Error(), "frame #")
	require.Equal(t, start, Live())
}

func TestGroupNormMatchesDefinition(t *testing.T) {
	s := NewScope()
	defer s.Close()
	x, err := FromFloat32(s, []float32{1, 2, 3, 4, 10, 20, 30, 40}, []int64{1, 2, 4}, Float32, CPU)
	require.NoError(t, err)
	y := vals(t, s.GroupNorm(x, 2, nil, nil, 0))
	// Each group is one channel: mean 2.5, variance 1.25 (biased).
	want := []float32{-1.3416408, -0.4472136, 0.4472136, 1.3416408}
	for i := range 4 {
		require.InDelta(t, want[i], y[i], 1e-5)
		require.InDelta(t, want[i], y[4+i], 1e-5)
	}
}

func TestSDPAMatchesSoftmaxFormula(t *testing.T) {
	s := NewScope()
	defer s.Close()
	g, err := NewGenerator(1)
	require.NoError(t, err)
	defer g.Close()
	q, _ := g.Randn(s, []int64{2, 3, 5, 4}, Float32, CPU)
	k, _ := g.Randn(s, []int64{2, 3, 7, 4}, Float32, CPU)
	v, _ := g.Randn(s, []int64{2, 3, 7, 4}, Float32, CPU)
	got := vals(t, s.SDPA(q, k, v, 0.5))
	ref := vals(t, s.Matmul(s.Softmax(s.MulScalar(s.Matmul(q, s.Transpose(k, -2, -1)), 0.5), -1), v))
	require.InDeltaSlice(t, ref, got, 1e-5)
}

func TestGeneratorIsSeeded(t *testing.T) {
	s := NewScope()
	defer s.Close()
	draw := func(seed uint64) []float32 {
		g, err := NewGenerator(seed)
		require.NoError(t, err)
		defer g.Close()
		x, err := g.Randn(s, []int64{16}, Float32, CPU)
		require.NoError(t, err)
		return vals(t, x)
	}
	require.Equal(t, draw(7), draw(7))
	require.NotEqual(t, draw(7), draw(8))
}

func TestGotorchRoundTripSharesStorage(t *testing.T) {
	start := Live()
	s := NewScope()
	a, err := FromFloat32(s, []float32{1, 2, 3}, []int64{3}, Float32, CPU)
	require.NoError(t, err)
	g, err := ToGotorch(a)
	require.NoError(t, err)
	require.Equal(t, []int64{3}, g.Shape())
	b, err := FromGotorch(s, g)
	require.NoError(t, err)
	require.Equal(t, []float32{1, 2, 3}, vals(t, b))
	// The gotorch side is independent of the scope.
	s.Close()
	require.Equal(t, []int64{3}, g.Shape())
	Release(g)
	Release(g)
	require.Equal(t, start, Live())
	_, err = FromGotorch(NewScope(), g)
	require.Error(t, err)
	_, err = FromGotorch(NewScope(), gotorch.Tensor{})
	require.Error(t, err)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s := NewScope()
	defer s.Close()
	a, _ := FromFloat32(s, []float32{1, -2, 3.5, 4}, []int64{2, 2}, Float32, CPU)
	h := s.Cast(a, BFloat16)
	path := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, SaveFile(path, map[string]*Tensor{"a": a, "h": h}, nil))
	got, err := LoadFile(s, path, CPU)
	require.NoError(t, err)
	require.Equal(t, BFloat16, got["h"].DType())
	require.Equal(t, []int64{2, 2}, got["a"].Shape())
	require.Equal(t, []float32{1, -2, 3.5, 4}, vals(t, got["a"]))
	require.Equal(t, []float32{1, -2, 3.5, 4}, vals(t, got["h"]))
}

func TestParseDeviceAndDType(t *testing.T) {
	d, err := ParseDevice("cpu")
	require.NoError(t, err)
	require.Equal(t, CPU, d)
	_, err = ParseDevice("tpu")
	require.ErrorContains(t, err, "tpu")
	dt, err := ParseDType("bf16")
	require.NoError(t, err)
	require.Equal(t, BFloat16, dt)
	_, err = ParseDType("fp8")
	require.ErrorContains(t, err, "fp8")
}

// The split-reduction GroupNorm must agree with libtorch's on awkward
// inputs: a permuted 5-d tensor, a large mean offset, no affine.
func TestGroupNormSplitMatchesNative(t *testing.T) {
	prev, err := GroupNormModeNow()
	require.NoError(t, err)
	defer SetGroupNormMode(prev)
	s := NewScope()
	defer s.Close()
	g, err := NewGenerator(3)
	require.NoError(t, err)
	defer g.Close()
	x, _ := g.Randn(s, []int64{2, 3, 64, 5, 6}, Float32, CPU)
	x = s.AddScalar(s.Permute(x, 0, 2, 1, 3, 4), 20) // [2, 64, 3, 5, 6], mean 20
	w, _ := g.Randn(s, []int64{64}, Float32, CPU)
	b, _ := g.Randn(s, []int64{64}, Float32, CPU)
	for _, affine := range []bool{true, false} {
		ww, bb := w, b
		if !affine {
			ww, bb = nil, nil
		}
		require.NoError(t, SetGroupNormMode(GroupNormNative))
		ref := vals(t, s.GroupNorm(x, 32, ww, bb, 1e-6))
		require.NoError(t, SetGroupNormMode(GroupNormSplitAlways))
		got := vals(t, s.GroupNorm(x, 32, ww, bb, 1e-6))
		require.InDeltaSlice(t, ref, got, 2e-3)
		var num, den float64
		for i := range ref {
			num += float64(ref[i]-got[i]) * float64(ref[i]-got[i])
			den += float64(ref[i]) * float64(ref[i])
		}
		require.Less(t, num/den, 1e-9, "relative squared error, affine=%v", affine)
	}
}

func TestPadInterpolatePixelShuffle(t *testing.T) {
	s := NewScope()
	defer s.Close()
	x, err := FromFloat32(s, []float32{1, 2, 3, 4}, []int64{1, 1, 2, 2}, Float32, CPU)
	require.NoError(t, err)
	// Reflect: [[1 2][3 4]] padded by one column each side → rows 2 1 2 1 / 4 3 4 3.
	require.Equal(t, []float32{2, 1, 2, 1, 4, 3, 4, 3}, vals(t, s.Pad(x, PadReflect, 0, 1, 1, 0, 0)))
	require.Equal(t, []float32{0, 1, 2, 0, 0, 3, 4, 0}, vals(t, s.Pad(x, PadConstant, 0, 1, 1, 0, 0)))
	// Bilinear with aligned corners: the middle of a 3×3 grid is the mean.
	up := vals(t, s.Interpolate(x, Bilinear, 3, 3, true, false))
	require.InDelta(t, 2.5, up[4], 1e-6)
	require.Equal(t, float32(1), up[0])
	require.Equal(t, float32(4), up[8])
	// Bicubic through a constant image stays constant.
	c, _ := Full(s, []int64{1, 2, 7, 9}, 3, Float32, CPU)
	for _, v := range vals(t, s.Interpolate(c, Bicubic, 4, 5, false, true)) {
		require.InDelta(t, 3, v, 1e-5)
	}
	// Pixel shuffle: four 1×1 channels become one 2×2 channel, row-major.
	p, _ := FromFloat32(s, []float32{1, 2, 3, 4}, []int64{1, 4, 1, 1}, Float32, CPU)
	ps := s.PixelShuffle(p, 2)
	require.Equal(t, []int64{1, 1, 2, 2}, ps.Shape())
	require.Equal(t, []float32{1, 2, 3, 4}, vals(t, ps))
}

// d/dx Σ (w·x)² = 2w²x; gradients flow through the split GroupNorm too.
func TestBackward(t *testing.T) {
	s := NewScope()
	defer s.Close()
	x, _ := FromFloat32(s, []float32{1, 2, 3}, []int64{3}, Float32, CPU)
	w, _ := FromFloat32(s, []float32{2, 0.5, -1}, []int64{3}, Float32, CPU)
	require.NoError(t, x.SetRequiresGrad(true))
	require.True(t, x.RequiresGrad())
	g, err := x.Grad(s)
	require.NoError(t, err)
	require.Nil(t, g)
	require.NoError(t, Backward(s.Sum(s.Square(s.Mul(w, x)), false)))
	g, err = x.Grad(s)
	require.NoError(t, err)
	require.Equal(t, []float32{8, 1, 6}, vals(t, g))
	require.NoError(t, x.ZeroGrad())
	g, _ = x.Grad(s)
	require.Nil(t, g)
	require.Error(t, Backward(s.Mul(w, x)), "non-scalar loss")

	prev, _ := GroupNormModeNow()
	defer SetGroupNormMode(prev)
	require.NoError(t, SetGroupNormMode(GroupNormSplitAlways))
	gen, _ := NewGenerator(9)
	defer gen.Close()
	y, _ := gen.Randn(s, []int64{2, 4, 3, 3}, Float32, CPU)
	require.NoError(t, y.SetRequiresGrad(true))
	require.NoError(t, Backward(s.Sum(s.Square(s.GroupNorm(y, 2, nil, nil, 1e-5)), false)))
	gy, err := y.Grad(s)
	require.NoError(t, err)
	require.NotNil(t, gy)
	// Σ of squares of a normalised group is constant (its count): the
	// gradient vanishes up to eps.
	for _, v := range vals(t, gy) {
		require.InDelta(t, 0, v, 1e-3)
	}
}

// GroupNorm's split statistics read channels-last input (4-d and 5-d) in
// place and keep the layout; the values equal libtorch's group_norm.
func TestGroupNormChannelsLast(t *testing.T) {
	mode, err := GroupNormModeNow()
	require.NoError(t, err)
	require.NoError(t, SetGroupNormMode(GroupNormSplitAlways))
	defer SetGroupNormMode(mode)
	g, err := NewGenerator(3)
	require.NoError(t, err)
	defer g.Close()
	s := NewScope()
	defer s.Close()
	for _, shape := range [][]int64{{2, 8, 5, 3}, {2, 8, 3, 5, 4}} {
		x, err := g.Randn(s, shape, Float32, CPU)
		require.NoError(t, err)
		w, err := g.Randn(s, []int64{8}, Float32, CPU)
		require.NoError(t, err)
		b, err := g.Randn(s, []int64{8}, Float32, CPU)
		require.NoError(t, err)
		x = s.AddScalar(s.MulScalar(x, 3), 5) // a mean and scale to remove
		cl := s.ChannelsLast(x)
		require.Equal(t, int64(1), cl.Strides()[1], "channels innermost")
		got := s.GroupNorm(cl, 4, w, b, 1e-5)
		require.Equal(t, cl.Strides(), got.Strides(), "the output keeps the layout")
		require.NoError(t, SetGroupNormMode(GroupNormNative))
		want := vals(t, s.GroupNorm(x, 4, w, b, 1e-5))
		require.NoError(t, SetGroupNormMode(GroupNormSplitAlways))
		gv := vals(t, s.Contiguous(got))
		for i := range want {
			require.InDelta(t, want[i], gv[i], 1e-4, "%v element %d", shape, i)
		}
	}
	_, err = func() (_ *Tensor, err error) {
		defer Recover(&err)
		x, _ := FromFloat32(s, []float32{1, 2}, []int64{2}, Float32, CPU)
		return s.ChannelsLast(x), nil
	}()
	require.ErrorContains(t, err, "want a 4-d or 5-d tensor")
}
