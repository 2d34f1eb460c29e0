package media

import (
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCHWRoundTripIsExactOn8Bit(t *testing.T) {
	src := randomNRGBA(13, 7, 1)
	gray := image.NewGray(image.Rect(2, 3, 9, 8))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(37 * i)
	}
	ycc := image.NewYCbCr(image.Rect(0, 0, 8, 6), image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = uint8(11 * i)
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = uint8(60+20*i), uint8(200-15*i)
	}
	for _, img := range []image.Image{src, gray, ycc, image.NewRGBA(image.Rect(-3, -2, 4, 4))} {
		data, w, h := ToCHW(img)
		require.Equal(t, img.Bounds().Dx(), w)
		require.Equal(t, img.Bounds().Dy(), h)
		require.Len(t, data, 3*w*h)
		for _, v := range data {
			require.True(t, v >= 0 && v <= 1, "value %v outside [0,1]", v)
		}
		back, err := FromCHW(data, w, h)
		require.NoError(t, err)
		requireSamePixels(t, img, back)
	}
}

func TestToCHWLayout(t *testing.T) {
	img := image.NewNRGBA(image.Rect(10, 20, 12, 21)) // 2×1, offset bounds
	img.SetNRGBA(10, 20, color.NRGBA{255, 0, 51, 255})
	img.SetNRGBA(11, 20, color.NRGBA{0, 102, 0, 0}) // transparent: colour kept
	data, w, h := ToCHW(img)
	require.Equal(t, 2, w)
	require.Equal(t, 1, h)
	require.Equal(t, []float32{1, 0, 0, 0.4, 0.2, 0}, data)

	pre := image.NewRGBA(image.Rect(0, 0, 1, 1))
	pre.SetRGBA(0, 0, color.RGBA{64, 32, 0, 128}) // premultiplied: straight is about (127, 64, 0)
	data, _, _ = ToCHW(pre)
	require.InDelta(t, 127.5/255, data[0], 1/255.0)
	require.InDelta(t, 63.75/255, data[1], 1/255.0)

	data, w, h = ToCHW(nil)
	require.Nil(t, data)
	require.Zero(t, w+h)
}

func TestFromCHWClampsAndRoundsHalfToEven(t *testing.T) {
	halves := map[int]uint8{100: 100, 101: 102, 126: 126, 127: 128}
	var vals []float32
	var want []uint8
	for n, r := range halves {
		v := float32((float64(n) + 0.5) / 255)
		require.Equal(t, float32(n)+0.5, v*255, "premise: %v×255 is exactly %d.5 in float32", v, n)
		vals, want = append(vals, v), append(want, r)
	}
	vals = append(vals, -0.3, 1.7, float32(math.NaN()), float32(math.Inf(1)), 0.2/255, 254.6/255)
	want = append(want, 0, 255, 0, 255, 0, 255)
	n := len(vals)
	data := make([]float32, 3*n)
	copy(data, vals)
	img, err := FromCHW(data, n, 1)
	require.NoError(t, err)
	for i, w := range want {
		require.Equal(t, w, img.Pix[4*i], "value %v", vals[i])
		require.Equal(t, uint8(255), img.Pix[4*i+3])
	}
}

func TestFromCHWRejectsBadShapes(t *testing.T) {
	_, err := FromCHW(make([]float32, 11), 2, 2)
	require.ErrorContains(t, err, "11 values do not make a 3×2×2 image")
	_, err = FromCHW(nil, 0, 3)
	require.ErrorContains(t, err, "0×3 must be positive")
	_, err = FromCHW(make([]float32, 3), math.MaxInt/2, 3)
	require.Error(t, err)
}

func TestFramesFromBFCHW(t *testing.T) {
	const b, f, h, w = 2, 3, 2, 4
	data := make([]float32, b*f*3*h*w)
	for i := range data {
		data[i] = float32(i%251) / 255
	}
	clips, err := FramesFromBFCHW(data, b, f, 3, h, w)
	require.NoError(t, err)
	require.Len(t, clips, b)
	for i := range clips {
		require.Len(t, clips[i], f)
		for j, img := range clips[i] {
			require.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
			for c := 0; c < 3; c++ {
				for y := 0; y < h; y++ {
					for x := 0; x < w; x++ {
						k := (((i*f+j)*3+c)*h+y)*w + x
						require.Equal(t, uint8(k%251), rgbAt(img, x, y)[c], "clip %d frame %d channel %d (%d,%d)", i, j, c, x, y)
					}
				}
			}
		}
	}

	for _, tc := range []struct {
		n             int
		b, f, c, h, w int
		msg           string
	}{
		{24, 1, 1, 4, 2, 3, "want 3 (RGB) channels, got 4"},
		{17, 1, 1, 3, 2, 3, "needs 18 values, got 17"},
		{18, 1, 0, 3, 2, 3, "every dimension must be positive"},
		{18, -1, 1, 3, 2, 3, "every dimension must be positive"},
		{18, math.MaxInt / 2, 4, 3, 2, 3, "too large"},
	} {
		_, err := FramesFromBFCHW(make([]float32, tc.n), tc.b, tc.f, tc.c, tc.h, tc.w)
		require.ErrorContains(t, err, tc.msg)
	}
}
