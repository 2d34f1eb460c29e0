package torch

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Under Autocast a product of float32 tensors comes out in the chosen
// dtype and agrees with the float32 product to that dtype's rounding; the
// state is the caller's again afterwards, also after a nested call, an
// error or a panic in f; a dtype without autocast support is refused
// before f runs.
func TestAutocast(t *testing.T) {
	dev := fusedDevice()
	s, randn := normalTensors(t, 3, dev)
	a, b := randn(8, 16), randn(16, 4)
	plain := s.Matmul(a, b)
	require.Equal(t, Float32, plain.DType())
	want := float64s(t, plain)

	var inner, outer DType
	require.NoError(t, Autocast(dev, BFloat16, func() error {
		y := s.Matmul(a, b)
		outer = y.DType()
		require.Less(t, relL2To(t, y, want), 1e-2)
		require.NoError(t, Autocast(dev, BFloat16, func() error {
			inner = s.Matmul(a, b).DType()
			return nil
		}))
		require.Equal(t, BFloat16, s.Matmul(a, b).DType(), "still on after the nested call")
		return nil
	}))
	require.Equal(t, BFloat16, outer)
	require.Equal(t, BFloat16, inner)
	require.Equal(t, Float32, s.Matmul(a, b).DType(), "off again after the call")

	sentinel := errors.New("from f")
	require.ErrorIs(t, Autocast(dev, BFloat16, func() error { return sentinel }), sentinel)
	require.Equal(t, Float32, s.Matmul(a, b).DType(), "off again after an error")
	require.Panics(t, func() {
		_ = Autocast(dev, BFloat16, func() error { panic("in f") })
	})
	require.Equal(t, Float32, s.Matmul(a, b).DType(), "off again after a panic")

	ran := false
	require.ErrorContains(t, Autocast(dev, Float32, func() error { ran = true; return nil }), "want bfloat16 or float16")
	require.False(t, ran)
}

// A normalisation handed a lower-precision input beside float32 weights,
// as autocast does, runs in float32: its result is float32 and equals the
// normalisation of the input converted to float32.
func TestNormsRunInTheWeightsDType(t *testing.T) {
	s, randn := normalTensors(t, 4, fusedDevice())
	x := s.Cast(randn(2, 64, 4, 4), BFloat16)
	x32 := s.Cast(x, Float32)
	w, b := randn(64), randn(64)
	for _, c := range []struct {
		name      string
		got, want *Tensor
	}{
		{"group norm", s.GroupNorm(x, 32, w, b, 1e-5), s.GroupNorm(x32, 32, w, b, 1e-5)},
		{"group norm + SiLU", s.GroupNormAct(x, 32, w, b, 1e-5, nil, true), s.GroupNormAct(x32, 32, w, b, 1e-5, nil, true)},
		{"layer norm", s.LayerNorm(s.Reshape(x, 2, 16, 64), []int64{64}, w, b, 1e-5), s.LayerNorm(s.Reshape(x32, 2, 16, 64), []int64{64}, w, b, 1e-5)},
	} {
		require.Equal(t, Float32, c.got.DType(), c.name)
		require.Less(t, relL2To(t, c.got, float64s(t, c.want)), 1e-6, c.name)
	}
}

// normalTensors is a scope and a source of float32 standard-normal tensors
// on dev from a generator seeded with seed, both released when the test
// ends.
func normalTensors(t *testing.T, seed uint64, dev Device) (*Scope, func(shape ...int64) *Tensor) {
	t.Helper()
	s := NewScope()
	t.Cleanup(s.Close)
	g, err := NewGenerator(seed)
	require.NoError(t, err)
	t.Cleanup(g.Close)
	return s, func(shape ...int64) *Tensor {
		x, err := g.Randn(s, shape, Float32, dev)
		require.NoError(t, err)
		return x
	}
}
