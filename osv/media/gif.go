package media

import (
	"fmt"
	"image"
	"image/gif"
	"io"
	"math"
)

// WriteGIF writes frames as an animated GIF that loops forever, with one
// median-cut palette for the whole clip and Floyd–Steinberg dithering (see
// the package doc). Each frame shows for 100/fps hundredths of a second,
// rounded half away from zero, and at least 2. All frames must have the
// same size, at most 65535 pixels a side.
func WriteGIF(path string, frames []image.Image, fps float64) error {
	if err := writeGIF(path, frames, fps); err != nil {
		return fmt.Errorf("media: writing GIF %s: %w", path, err)
	}
	return nil
}

func writeGIF(path string, frames []image.Image, fps float64) error {
	w, h, err := checkFrames(frames)
	if err != nil {
		return err
	}
	if err := checkFPS(fps); err != nil {
		return err
	}
	if w > 0xffff || h > 0xffff {
		return fmt.Errorf("frames of %d×%d exceed GIF's 65535 pixels a side", w, h)
	}
	delay := int(min(max(math.Round(100/fps), 2), 0xffff))
	pal := medianCut(frames, 256)
	m := newMapper(pal)
	g := &gif.GIF{
		Image:     make([]*image.Paletted, len(frames)),
		Delay:     make([]int, len(frames)),
		LoopCount: 0,
		Config:    image.Config{ColorModel: pal, Width: w, Height: h},
	}
	for i, f := range frames {
		g.Image[i] = m.dither(f)
		g.Delay[i] = delay
	}
	return writeAtomic(path, func(out io.Writer) error { return gif.EncodeAll(out, g) })
}
