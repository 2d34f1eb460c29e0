package clip

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

func TestBlurTaps(t *testing.T) {
	// Sizes worked out by hand from σ = max((n/size − 1)/2, 0.001) and
	// int(max(4σ, 3)) made odd.
	cases := []struct{ n, size, taps int64 }{
		{80, 224, 3},    // upscaling: σ = 0.001
		{224, 224, 3},   // σ = 0.001
		{448, 224, 3},   // σ = 0.5, 4σ = 2
		{576, 224, 3},   // σ ≈ 0.786, 4σ ≈ 3.14
		{896, 224, 7},   // σ = 1.5, 4σ = 6, made odd
		{1024, 224, 7},  // σ ≈ 1.786, 4σ ≈ 7.14
		{1344, 224, 11}, // σ = 2.5, 4σ = 10, made odd
	}
	for _, c := range cases {
		taps := blurTaps(c.n, c.size)
		require.Len(t, taps, int(c.taps), "%d → %d", c.n, c.size)
		var sum float64
		for i, v := range taps {
			sum += float64(v)
			require.InDelta(t, v, taps[len(taps)-1-i], 0, "symmetric")
		}
		require.InDelta(t, 1, sum, 1e-6)
	}
	// σ = 0.001: the blur is the identity.
	require.Equal(t, []float32{0, 1, 0}, blurTaps(80, 224))
	// σ = 0.5: exp(−x²/(2σ²)) = [e⁻², 1, e⁻²], normalised.
	e := math.Exp(-2)
	want := []float64{e / (1 + 2*e), 1 / (1 + 2*e), e / (1 + 2*e)}
	for i, v := range blurTaps(448, 224) {
		require.InDelta(t, want[i], v, 1e-7)
	}
}

// directBlur blurs img [h][w] with taps along the width, then along the
// height, reflecting at the borders (the pixel at −1 is the one at 1).
func directBlur(img [][]float64, tx, ty []float32) [][]float64 {
	h, w := len(img), len(img[0])
	reflect := func(i, n int) int {
		if i < 0 {
			return -i
		}
		if i >= n {
			return 2*(n-1) - i
		}
		return i
	}
	pass := func(src [][]float64, taps []float32, alongWidth bool) [][]float64 {
		out := make([][]float64, h)
		r := len(taps) / 2
		for y := range h {
			out[y] = make([]float64, w)
			for x := range w {
				var v float64
				for k, tap := range taps {
					if alongWidth {
						v += float64(tap) * src[y][reflect(x+k-r, w)]
					} else {
						v += float64(tap) * src[reflect(y+k-r, h)][x]
					}
				}
				out[y][x] = v
			}
		}
		return out
	}
	return pass(pass(img, tx, true), ty, false)
}

func TestBlurMatchesDirectSum(t *testing.T) {
	// A downscale with a wide kernel on each axis (the fixture image is
	// upscaled, where the blur is the identity).
	const n, ch, h, w = 2, 3, 37, 61
	tx, ty := blurTaps(w, 6), blurTaps(h, 5)
	require.Greater(t, len(tx), 3)
	require.Greater(t, len(ty), 3)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, n*ch*h*w)
	for i := range data {
		data[i] = rng.Float32()
	}
	s := torch.NewScope()
	defer s.Close()
	var got []float32
	var err error
	func() {
		defer torch.Recover(&err)
		x, xerr := torch.FromFloat32(s, data, []int64{n * ch, 1, h, w}, torch.Float32, testDevice)
		require.NoError(t, xerr)
		got, err = blurAxis(s, blurAxis(s, x, tx, 3), ty, 2).Float32s()
	}()
	require.NoError(t, err)
	var want []float32
	for i := range n * ch {
		img := make([][]float64, h)
		for y := range h {
			img[y] = make([]float64, w)
			for x := range w {
				img[y][x] = float64(data[(i*h+y)*w+x])
			}
		}
		for _, row := range directBlur(img, tx, ty) {
			for _, v := range row {
				want = append(want, float32(v))
			}
		}
	}
	rel, err := fixture.RelL2(got, want)
	require.NoError(t, err)
	t.Logf("blur %d×%d with %d×%d taps: relative L2 error %.3g against the direct sum", h, w, len(ty), len(tx), rel)
	require.LessOrEqual(t, rel, 1e-6)
}

func TestResizeKeepsConstantImages(t *testing.T) {
	// A normalised blur and a resize keep a constant image constant;
	// normalising it gives (v − mean)/std per channel.
	p := &Preprocessor{Mean: []float64{0.25, 0.5, 0.75}, Std: []float64{0.5, 0.25, 2}, Height: 9, Width: 13}
	s := torch.NewScope()
	defer s.Close()
	var err error
	var resized, pixels []float32
	func() {
		defer torch.Recover(&err)
		x, xerr := torch.Full(s, []int64{2, 3, 50, 71}, 0.375, torch.Float32, testDevice)
		require.NoError(t, xerr)
		r := p.ResizeApply(s, x)
		require.Equal(t, []int64{2, 3, 9, 13}, r.Shape())
		resized, xerr = r.Float32s()
		require.NoError(t, xerr)
		pixels, err = p.NormalizeApply(s, r).Float32s()
	}()
	require.NoError(t, err)
	for _, v := range resized {
		require.InDelta(t, 0.375, v, 1e-6)
	}
	for i, v := range pixels {
		c := (i / (9 * 13)) % 3
		require.InDelta(t, (0.375-p.Mean[c])/p.Std[c], v, 1e-5)
	}
}

func TestQuickGELU(t *testing.T) {
	xs := []float32{-4, -1.5, -0.25, 0, 0.5, 2, 6}
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromFloat32(s, xs, []int64{int64(len(xs))}, torch.Float32, testDevice)
	require.NoError(t, err)
	var got []float32
	func() {
		defer torch.Recover(&err)
		got, err = activation(s, QuickGELU, x).Float32s()
	}()
	require.NoError(t, err)
	for i, v := range xs {
		want := float64(v) / (1 + math.Exp(-1.702*float64(v)))
		require.InDelta(t, want, got[i], 1e-6, "quick_gelu(%g)", v)
	}
}
