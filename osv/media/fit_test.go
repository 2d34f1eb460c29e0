package media

import (
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	red   = color.NRGBA{255, 0, 0, 255}
	green = color.NRGBA{0, 255, 0, 255}
	blue  = color.NRGBA{0, 0, 255, 255}
)

// bands makes a w×h image whose columns [0,a) are red, [a,b) green and
// [b,w) blue.
func bands(w, h, a, b int) *image.NRGBA {
	img := flat(w, h, red)
	for y := 0; y < h; y++ {
		for x := a; x < w; x++ {
			if x < b {
				img.SetNRGBA(x, y, green)
			} else {
				img.SetNRGBA(x, y, blue)
			}
		}
	}
	return img
}

func TestFitSizes(t *testing.T) {
	src := randomNRGBA(37, 23, 2)
	for _, mode := range []FitMode{FitCrop, FitStretch} {
		for _, sz := range [][2]int{{16, 16}, {64, 9}, {5, 40}, {74, 46}, {1, 1}, {37, 10}} {
			out := Fit(src, sz[0], sz[1], mode)
			require.NotNil(t, out, "%v %v", mode, sz)
			require.Equal(t, image.Rect(0, 0, sz[0], sz[1]), out.Bounds(), "%v %v", mode, sz)
		}
	}
}

func TestFitKeepsAnImageOfTheRightSize(t *testing.T) {
	src := randomNRGBA(12, 8, 3)
	require.Same(t, src, Fit(src, 12, 8, FitCrop).(*image.NRGBA))
	require.Same(t, src, Fit(src, 12, 8, FitStretch).(*image.NRGBA))
}

func TestFitCropKeepsTheCentre(t *testing.T) {
	// A wide image whose middle square is green: cropping to a square
	// keeps only green. The filter of a ×½ downscale reaches 6 source
	// columns out, so the outer output columns take a little colour from
	// just outside the square, as resizing then cropping would.
	src := bands(80, 20, 30, 50)
	out := Fit(src, 10, 10, FitCrop)
	require.NotEqual(t, [3]uint8{0, 255, 0}, rgbAt(out, 0, 5))
	for y := 0; y < 10; y++ {
		for x := 3; x < 7; x++ {
			require.Equal(t, [3]uint8{0, 255, 0}, rgbAt(out, x, y), "(%d,%d)", x, y)
		}
	}
	// Stretching keeps all three bands instead.
	st := Fit(src, 40, 10, FitStretch)
	require.Equal(t, [3]uint8{255, 0, 0}, rgbAt(st, 2, 5))
	require.Equal(t, [3]uint8{0, 255, 0}, rgbAt(st, 20, 5))
	require.Equal(t, [3]uint8{0, 0, 255}, rgbAt(st, 37, 5))

	// A tall image is cropped top and bottom: rows 0..9 red, 10..19 green,
	// 20..29 blue; a 20×10 crop of its 20×30 keeps rows 10..19.
	tall := flat(20, 30, green)
	for y := 0; y < 30; y++ {
		for x := 0; x < 20; x++ {
			switch {
			case y < 10:
				tall.SetNRGBA(x, y, red)
			case y >= 20:
				tall.SetNRGBA(x, y, blue)
			}
		}
	}
	out = Fit(tall, 40, 20, FitCrop) // ×2 upscale of rows 10..19
	for x := 0; x < 40; x++ {
		require.Equal(t, [3]uint8{0, 255, 0}, rgbAt(out, x, 10), "column %d", x)
	}
	require.NotEqual(t, [3]uint8{0, 255, 0}, rgbAt(out, 20, 0), "the crop edge sees the red rows above it")
}

func TestFitCropMatchesResizeThenCrop(t *testing.T) {
	// With an integer scale and offset, cropping equals stretching the
	// whole image to the covering size and cutting out the centre.
	src := randomNRGBA(40, 20, 4)
	crop := Fit(src, 10, 10, FitCrop)
	whole := Fit(src, 20, 10, FitStretch)
	for y := 0; y < 10; y++ {
		for x := 0; x < 10; x++ {
			require.Equal(t, rgbAt(whole, x+5, y), rgbAt(crop, x, y), "(%d,%d)", x, y)
		}
	}
}

func TestResamplerKeepsAConstantImage(t *testing.T) {
	c := color.NRGBA{13, 200, 127, 255}
	src := flat(29, 17, c)
	for _, mode := range []FitMode{FitCrop, FitStretch} {
		for _, sz := range [][2]int{{7, 5}, {64, 50}, {30, 3}, {2, 40}} {
			out := Fit(src, sz[0], sz[1], mode)
			for y := 0; y < sz[1]; y++ {
				for x := 0; x < sz[0]; x++ {
					require.Equal(t, [3]uint8{13, 200, 127}, rgbAt(out, x, y), "%v %v (%d,%d)", mode, sz, x, y)
				}
			}
		}
	}
}

func TestResamplerFollowsALinearRamp(t *testing.T) {
	// A horizontal ramp v(x) = x + 0.5 (pixel centres) sampled at the
	// output pixel centres: away from the edges the filter reproduces it
	// up to the final rounding; a vertical resize leaves it untouched.
	const n = 200
	src := image.NewGray(image.Rect(0, 0, n, 6))
	for y := 0; y < 6; y++ {
		for x := 0; x < n; x++ {
			src.SetGray(x, y, color.Gray{uint8(x)})
		}
	}
	for _, w := range []int{50, 73, 200 * 3 / 2, 437} {
		out := Fit(src, w, 9, FitStretch)
		s := float64(n) / float64(w)
		margin := int(math.Ceil(3*math.Max(s, 1)/s)) + 1
		worst := 0.0
		for x := margin; x < w-margin; x++ {
			want := (float64(x)+0.5)*s - 0.5
			for y := 0; y < 9; y++ {
				got := float64(rgbAt(out, x, y)[0])
				worst = math.Max(worst, math.Abs(got-want))
			}
		}
		t.Logf("ramp of %d to %d columns: largest error %.3f levels", n, w, worst)
		require.LessOrEqual(t, worst, 0.51, "width %d", w)
	}
}

func TestFitRefusesBadArguments(t *testing.T) {
	src := randomNRGBA(4, 4, 5)
	require.Nil(t, Fit(nil, 4, 4, FitCrop))
	require.Nil(t, Fit(image.NewRGBA(image.Rect(0, 0, 0, 5)), 4, 4, FitCrop))
	require.Nil(t, Fit(src, 0, 4, FitCrop))
	require.Nil(t, Fit(src, 4, -1, FitStretch))
	require.Nil(t, Fit(src, 8, 8, FitMode(7)))
	require.Nil(t, Fit(src, math.MaxInt/2, 8, FitStretch))
}

func TestParseFitMode(t *testing.T) {
	for _, m := range []FitMode{FitCrop, FitStretch} {
		got, err := ParseFitMode(m.String())
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	_, err := ParseFitMode("squash")
	require.ErrorContains(t, err, `unknown fit mode "squash" (want crop or stretch)`)
	require.Equal(t, "FitMode(9)", FitMode(9).String())
}
