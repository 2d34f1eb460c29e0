package huber

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/torch"
)

func tensor(t *testing.T, s *torch.Scope, v ...float32) *torch.Tensor {
	t.Helper()
	x, err := torch.FromFloat32(s, v, []int64{int64(len(v))}, torch.Float64, torch.CPU)
	require.NoError(t, err)
	return x
}

func values(t *testing.T, x *torch.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

func TestPseudoHuberLimits(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	const c = 0.5
	diffs := []float32{1e-4, -2e-4, 3e-3, 40, -300, 1e3}
	zero := tensor(t, s, make([]float32, len(diffs))...)
	got := values(t, Apply(s, tensor(t, s, diffs...), zero, c, loss.None))
	for i, d := range diffs {
		ad := math.Abs(float64(d))
		switch {
		case ad < 1e-2*c: // quadratic: (a−b)²/(2c)
			require.InEpsilon(t, ad*ad/(2*c), float64(got[i]), 1e-3, "diff %g", d)
		case ad > 50*c: // linear: |a−b| − c
			require.InEpsilon(t, ad-c, float64(got[i]), 1e-2, "diff %g", d)
		}
		exact := math.Sqrt(ad*ad+c*c) - c
		require.InEpsilon(t, exact, float64(got[i]), 1e-5)
	}
}

func TestPseudoHuberReductionsAndErrors(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	a := tensor(t, s, 3, 0, -4)
	b := tensor(t, s, 0, 0, 0)
	per := values(t, Apply(s, a, b, 1, loss.None))
	want := []float64{math.Sqrt(10) - 1, 0, math.Sqrt(17) - 1}
	for i := range want {
		require.InDelta(t, want[i], per[i], 1e-6)
	}
	require.InDelta(t, (want[0]+want[1]+want[2])/3, values(t, Apply(s, a, b, 1, loss.Mean))[0], 1e-6)
	require.InDelta(t, want[0]+want[1]+want[2], values(t, Apply(s, a, b, 1, loss.Sum))[0], 1e-6)

	ga, err := torch.ToGotorch(a)
	require.NoError(t, err)
	defer torch.Release(ga)
	gb, err := torch.ToGotorch(tensor(t, s, 1, 2))
	require.NoError(t, err)
	defer torch.Release(gb)
	_, err = Loss(ga, gb, 1, loss.Mean)
	require.ErrorContains(t, err, "shapes differ")
	_, err = Loss(ga, ga, 0, loss.Mean)
	require.ErrorContains(t, err, "c must be positive")
	out, err := Loss(ga, ga, DefaultC, loss.Sum)
	require.NoError(t, err)
	defer torch.Release(out)
	require.Equal(t, []int64{}, out.Shape())
}
