package world

import "math"

// Background returns the mean level, in [0, 1], of the pixels of a clip
// (F×3×Size×Size, as for Track) that lie away from every object: farther
// than MaxSide/2 + 2 pixels, along either axis, from the centre of every
// colour Track finds in that frame. The world's background is black, so a
// clean clip scores 0 and noise or haze left over the frame raises it.
// Frames whose every pixel is near an object do not count; a clip with no
// such pixel scores 0.
func (c Config) Background(pixels []float32) float64 {
	a := c.analyze(pixels)
	s := c.Size
	plane := s * s
	reach := float64(c.MaxSide)/2 + 2
	var sum float64
	var n int
	for t := 0; t < a.frames; t++ {
		frame := pixels[t*3*plane : (t+1)*3*plane]
		for row := 0; row < s; row++ {
			for col := 0; col < s; col++ {
				if a.nearObject(t, float64(col)+0.5, float64(row)+0.5, reach) {
					continue
				}
				for ch := 0; ch < 3; ch++ {
					v := (float64(frame[ch*plane+row*s+col]) + 1) / 2
					sum += math.Min(1, math.Max(0, v))
				}
				n += 3
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// nearObject reports whether (x, y) lies within reach, along both axes, of
// a colour found at frame t.
func (a *analysis) nearObject(t int, x, y, reach float64) bool {
	for k := range a.tracks {
		if !a.found[k][t] {
			continue
		}
		c := a.tracks[k][t]
		if math.Abs(x-c[0]) <= reach && math.Abs(y-c[1]) <= reach {
			return true
		}
	}
	return false
}
