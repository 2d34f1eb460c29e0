package media

import (
	"fmt"
	"image"
	"math"
)

// FitMode says how Fit maps an image onto a size of another aspect ratio.
type FitMode int

const (
	// FitCrop scales the image to cover the size, keeping its aspect
	// ratio, and keeps the centre. The zero value, and the default.
	FitCrop FitMode = iota
	// FitStretch scales width and height independently (the aspect ratio
	// changes), as diffusers' SVD pipeline does.
	FitStretch
)

// String returns "crop" or "stretch", the names ParseFitMode accepts.
func (m FitMode) String() string {
	switch m {
	case FitCrop:
		return "crop"
	case FitStretch:
		return "stretch"
	}
	return fmt.Sprintf("FitMode(%d)", int(m))
}

// ParseFitMode reads "crop" or "stretch" (a command-line flag's value).
func ParseFitMode(s string) (FitMode, error) {
	switch s {
	case "crop":
		return FitCrop, nil
	case "stretch":
		return FitStretch, nil
	}
	return 0, fmt.Errorf("media: unknown fit mode %q (want crop or stretch)", s)
}

// Fit resizes img to width×height with the Lanczos-3 resampler described in
// the package doc. An image that already has that size is returned
// unchanged; otherwise the result is an opaque *image.RGBA whose bounds
// start at (0,0). Fit returns nil when img is nil or empty, when width or
// height is not positive, or when mode is neither FitCrop nor FitStretch.
func Fit(img image.Image, width, height int, mode FitMode) image.Image {
	if empty(img) || width <= 0 || height <= 0 || (mode != FitCrop && mode != FitStretch) {
		return nil
	}
	if _, ok := product(3, width, height); !ok {
		return nil
	}
	b := img.Bounds()
	if b.Dx() == width && b.Dy() == height {
		return img
	}
	data, w, h := ToCHW(img)
	x0, y0, bw, bh := 0.0, 0.0, float64(w), float64(h)
	if mode == FitCrop {
		s := math.Max(float64(width)/float64(w), float64(height)/float64(h))
		bw = math.Min(float64(width)/s, float64(w))
		bh = math.Min(float64(height)/s, float64(h))
		x0, y0 = (float64(w)-bw)/2, (float64(h)-bh)/2
	}
	out, err := FromCHW(resample(data, w, h, x0, y0, bw, bh, width, height), width, height)
	if err != nil {
		return nil
	}
	return out
}
