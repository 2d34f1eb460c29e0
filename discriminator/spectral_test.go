package discriminator

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// topSingular is the largest singular value of the rows×cols matrix m, by
// power iteration on mᵀm in float64.
func topSingular(m []float32, rows, cols int) float64 {
	v := make([]float64, cols)
	for i := range v {
		v[i] = 1 / math.Sqrt(float64(cols)+float64(i))
	}
	var lambda float64
	for range 3000 {
		mv := make([]float64, rows)
		for r := range rows {
			for c := range cols {
				mv[r] += float64(m[r*cols+c]) * v[c]
			}
		}
		w := make([]float64, cols)
		for r := range rows {
			for c := range cols {
				w[c] += float64(m[r*cols+c]) * mv[r]
			}
		}
		var n float64
		for _, x := range w {
			n += x * x
		}
		n = math.Sqrt(n)
		for c := range w {
			v[c] = w[c] / n
		}
		lambda = n
	}
	return math.Sqrt(lambda)
}

func sigmaOf(t *testing.T, sn *snConv, train bool) float64 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	var v float64
	require.NoError(t, apply(func() {
		var err error
		v, err = sn.sigma(s, train).Item()
		require.NoError(t, err)
	}))
	return v
}

// σ estimates the weight's largest singular value from below; evaluation
// leaves u alone, each training forward makes one more iteration, and the
// estimate converges to the true value.
func TestSpectralNorm(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{})
	sn := d.spatial[0].res.conv
	w := sn.conv.Weight.T
	data, err := w.Float32s()
	require.NoError(t, err)
	rows := int(w.Size(0))
	want := topSingular(data, rows, len(data)/rows)

	u0, err := sn.u.T.Float32s()
	require.NoError(t, err)
	first := sigmaOf(t, sn, false)
	u1, err := sn.u.T.Float32s()
	require.NoError(t, err)
	require.Equal(t, u0, u1, "an evaluation forward changed u")
	require.LessOrEqual(t, first, want*(1+1e-5))
	require.Greater(t, first, 0.5*want)

	prev := first
	held := sn.u.T
	for range 300 {
		prev = sigmaOf(t, sn, true)
	}
	// In place: a recorded step's replays must see each update.
	require.Same(t, held, sn.u.T, "a training forward replaced u's tensor")
	u2, err := sn.u.T.Float32s()
	require.NoError(t, err)
	require.NotEqual(t, u0, u2, "training forwards did not update u")
	t.Logf("σ after New %.6g, after 300 training forwards %.6g, largest singular value %.6g", first, prev, want)
	require.InEpsilon(t, want, prev, 1e-4)

	// A training forward of the whole discriminator updates every u; an
	// evaluation forward none.
	s := torch.NewScope()
	defer s.Close()
	x := randn(t, s, 9, 1, 2, 4, 8, 8)
	snapshot := func() [][]float32 {
		var out [][]float32
		for _, c := range d.snConvs() {
			v, err := c.u.T.Float32s()
			require.NoError(t, err)
			out = append(out, v)
		}
		return out
	}
	before := snapshot()
	d.SetTraining(false)
	require.False(t, d.Training())
	require.NoError(t, apply(func() { d.Apply(s, x) }))
	require.Equal(t, before, snapshot())
	d.SetTraining(true)
	require.NoError(t, apply(func() { d.Apply(s, x) }))
	after := snapshot()
	for i := range before {
		if len(before[i]) > 1 { // a one-output layer's u is ±1 for good
			require.NotEqual(t, before[i], after[i], "u %d", i)
		}
	}
}
