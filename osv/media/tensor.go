package media

import (
	"fmt"
	"image"
	"math"
)

// ToCHW returns img as float32 planar RGB in [0,1]: data[c*h*w + y*w + x]
// for channel c (R, G, B), row y and column x counted from the image's
// top-left corner. Alpha is ignored (see the package doc). A nil or empty
// image gives nil, 0, 0.
func ToCHW(img image.Image) (data []float32, w, h int) {
	if empty(img) {
		return nil, 0, 0
	}
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	data = make([]float32, 3*w*h)
	row := make([]uint16, 3*w)
	plane := w * h
	for y := 0; y < h; y++ {
		readRow(img, b.Min.Y+y, row)
		o := y * w
		for x := 0; x < w; x++ {
			data[o+x] = float32(row[3*x]) / 0xffff
			data[plane+o+x] = float32(row[3*x+1]) / 0xffff
			data[2*plane+o+x] = float32(row[3*x+2]) / 0xffff
		}
	}
	return data, w, h
}

// FromCHW makes an opaque image from float32 planar RGB data laid out as
// ToCHW returns it. Values are clamped to [0,1], multiplied by 255 and
// rounded half to even, as diffusers' numpy_to_pil does; NaN becomes 0.
func FromCHW(data []float32, w, h int) (*image.RGBA, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("media: image size %d×%d must be positive", w, h)
	}
	if n, ok := product(3, h, w); !ok || len(data) != n {
		return nil, fmt.Errorf("media: %d values do not make a 3×%d×%d image", len(data), h, w)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	plane := w * h
	for i := 0; i < plane; i++ {
		p := img.Pix[4*i : 4*i+4]
		p[0] = to8(data[i])
		p[1] = to8(data[plane+i])
		p[2] = to8(data[2*plane+i])
		p[3] = 0xff
	}
	return img, nil
}

// to8 quantises one value in [0,1] to 8 bits: clamp, ×255 in float32,
// round half to even.
func to8(v float32) uint8 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= 1:
		return 0xff
	}
	s := v * 255
	return uint8(math.RoundToEven(float64(s)))
}

// FramesFromBFCHW splits a [B,F,C,H,W] float32 buffer (C must be 3, values in
// [0,1]) into B clips of F frames each, quantised as FromCHW does.
func FramesFromBFCHW(data []float32, b, f, c, h, w int) ([][]image.Image, error) {
	shape := fmt.Sprintf("[%d,%d,%d,%d,%d]", b, f, c, h, w)
	if b <= 0 || f <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("media: frame buffer shape %s: every dimension must be positive", shape)
	}
	if c != 3 {
		return nil, fmt.Errorf("media: frame buffer shape %s: want 3 (RGB) channels, got %d", shape, c)
	}
	want, ok := product(b, f, c, h, w)
	if !ok {
		return nil, fmt.Errorf("media: frame buffer shape %s is too large", shape)
	}
	if len(data) != want {
		return nil, fmt.Errorf("media: frame buffer shape %s needs %d values, got %d", shape, want, len(data))
	}
	clips := make([][]image.Image, b)
	n := 3 * h * w
	for i := range clips {
		clips[i] = make([]image.Image, f)
		for j := range clips[i] {
			o := (i*f + j) * n
			img, err := FromCHW(data[o:o+n], w, h)
			if err != nil {
				return nil, err
			}
			clips[i][j] = img
		}
	}
	return clips, nil
}

// product multiplies positive dimensions, reporting false on overflow.
func product(dims ...int) (int, bool) {
	n := 1
	for _, d := range dims {
		if d <= 0 || n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}
