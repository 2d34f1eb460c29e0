package world

import (
	"fmt"
	"math"
)

// ColorTolerance is the largest Euclidean RGB distance, in [0, 1] units,
// between a pixel and a palette colour for the pixel to count as that
// colour. It is also the distance from black beyond which a pixel counts as
// non-background. Palette colours are at least 1 apart from each other and
// from black, so a pixel within the tolerance of a colour is nearer to it
// than to anything else.
const ColorTolerance = 0.35

// MinPixels is the fewest pixels of a colour in a frame for Track to report
// the colour as found in that frame.
const MinPixels = 8

// analysis holds the per-frame colour statistics of one clip.
type analysis struct {
	frames  int
	tracks  [][][2]float64 // [colour][frame] centroid
	found   [][]bool       // [colour][frame]
	counts  [][]int        // [colour][frame] matched pixels
	nonBg   []int          // [frame] pixels farther than ColorTolerance from black
	matched []int          // [frame] pixels matched to any colour
	rgbSum  [3]float64     // sum over the clip of each channel in [0, 1]
}

// frames returns the number of frames in pixels, panicking when the length
// is not a whole number of 3×Size×Size frames.
func (c Config) frames(pixels []float32) int {
	frame := 3 * c.Size * c.Size
	if frame == 0 || len(pixels)%frame != 0 {
		panic(fmt.Errorf("world: %d values are not a whole number of 3×%d×%d frames", len(pixels), c.Size, c.Size))
	}
	return len(pixels) / frame
}

func (c Config) analyze(pixels []float32) *analysis {
	f := c.frames(pixels)
	s := c.Size
	plane := s * s
	nc := len(Palette)
	a := &analysis{
		frames:  f,
		tracks:  make([][][2]float64, nc),
		found:   make([][]bool, nc),
		counts:  make([][]int, nc),
		nonBg:   make([]int, f),
		matched: make([]int, f),
	}
	for k := 0; k < nc; k++ {
		a.tracks[k] = make([][2]float64, f)
		a.found[k] = make([]bool, f)
		a.counts[k] = make([]int, f)
	}
	const tol2 = ColorTolerance * ColorTolerance
	sumX := make([]float64, nc)
	sumY := make([]float64, nc)
	for t := 0; t < f; t++ {
		base := t * 3 * plane
		pr := pixels[base : base+plane]
		pg := pixels[base+plane : base+2*plane]
		pb := pixels[base+2*plane : base+3*plane]
		clear(sumX)
		clear(sumY)
		var rs, gs, bs float64
		for i := 0; i < plane; i++ {
			r := (pr[i] + 1) / 2
			g := (pg[i] + 1) / 2
			b := (pb[i] + 1) / 2
			rs += float64(r)
			gs += float64(g)
			bs += float64(b)
			best := r*r + g*g + b*b // distance² to black
			if best > tol2 {
				a.nonBg[t]++
			}
			k := -1
			for j, p := range Palette {
				dr, dg, db := r-p[0], g-p[1], b-p[2]
				if d := dr*dr + dg*dg + db*db; d < best {
					best, k = d, j
				}
			}
			if k < 0 || best > tol2 {
				continue
			}
			a.matched[t]++
			a.counts[k][t]++
			sumX[k] += float64(i%s) + 0.5
			sumY[k] += float64(i/s) + 0.5
		}
		a.rgbSum[0] += rs
		a.rgbSum[1] += gs
		a.rgbSum[2] += bs
		for k := 0; k < nc; k++ {
			n := a.counts[k][t]
			if n > 0 {
				a.tracks[k][t] = [2]float64{sumX[k] / float64(n), sumY[k] / float64(n)}
			}
			a.found[k][t] = n >= MinPixels
		}
	}
	return a
}

// Track finds each palette colour's centroid per frame. pixels holds
// F×3×Size×Size values in [-1, 1] (CHW per frame) and may be noisy or
// slightly off-colour. A pixel belongs to colour k when its RGB, mapped to
// [0, 1], is within ColorTolerance of Palette[k] and nearer to it than to
// any other palette colour and to black. tracks[k][t] is the centroid (x,
// y) in pixels of the pixels of colour k at frame t (pixel (row, col) sits
// at (col+0.5, row+0.5); the centroid is (0, 0) when no pixel matched), and
// found[k][t] says whether at least MinPixels pixels matched. Track panics
// when len(pixels) is not a multiple of 3×Size×Size.
func (c Config) Track(pixels []float32) (tracks [][][2]float64, found [][]bool) {
	a := c.analyze(pixels)
	return a.tracks, a.found
}

// Motion is the motion summary of one clip, over the palette colours found
// in frame 0.
type Motion struct {
	// Speed is the mean length of the centroid displacement between
	// consecutive frames, in pixels per frame, over the pairs of frames
	// where the colour is found in both.
	Speed float64
	// Smoothness is the mean length of the centroid's second difference,
	// in pixels per frame², over the triples of consecutive frames where
	// the colour is found in all three: 0 for constant velocity, with
	// spikes at bounces.
	Smoothness float64
	// Persistence is the fraction of (colour found at frame 0, later frame)
	// pairs where the colour is still found. It is 1 for a single-frame
	// clip with an object and 0 when no colour is found at frame 0.
	Persistence float64
	// Objects is the number of colours found at frame 0.
	Objects int
}

// motion computes the Motion of a and returns the displacement lengths it
// averaged into Speed.
func (a *analysis) motion() (Motion, []float64) {
	var m Motion
	var steps []float64
	var smooth float64
	var triples, kept, pairs int
	for k := range a.tracks {
		if !a.found[k][0] {
			continue
		}
		m.Objects++
		tr, fd := a.tracks[k], a.found[k]
		for t := 1; t < a.frames; t++ {
			pairs++
			if fd[t] {
				kept++
			}
			if fd[t] && fd[t-1] {
				steps = append(steps, math.Hypot(tr[t][0]-tr[t-1][0], tr[t][1]-tr[t-1][1]))
			}
			if t >= 2 && fd[t] && fd[t-1] && fd[t-2] {
				ax := tr[t][0] - 2*tr[t-1][0] + tr[t-2][0]
				ay := tr[t][1] - 2*tr[t-1][1] + tr[t-2][1]
				smooth += math.Hypot(ax, ay)
				triples++
			}
		}
	}
	m.Speed = mean(steps)
	if triples > 0 {
		m.Smoothness = smooth / float64(triples)
	}
	switch {
	case pairs > 0:
		m.Persistence = float64(kept) / float64(pairs)
	case m.Objects > 0:
		m.Persistence = 1
	}
	return m, steps
}

// MeasureMotion tracks the colours of pixels (F×3×Size×Size, as for Track)
// and summarises their motion.
func (c Config) MeasureMotion(pixels []float32) Motion {
	m, _ := c.analyze(pixels).motion()
	return m
}

// MotionSummary summarises the motion of many clips.
type MotionSummary struct {
	Speed       float64 // mean of the per-clip speeds
	SpeedStd    float64 // population standard deviation of the per-clip speeds
	Smoothness  float64 // mean of the per-clip smoothness
	Persistence float64 // mean of the per-clip persistence
	Clips       int     // number of clips
}

// Summarize averages the motion of many clips.
func Summarize(ms []Motion) MotionSummary {
	s := MotionSummary{Clips: len(ms)}
	if len(ms) == 0 {
		return s
	}
	speeds := make([]float64, len(ms))
	for i, m := range ms {
		speeds[i] = m.Speed
		s.Smoothness += m.Smoothness
		s.Persistence += m.Persistence
	}
	n := float64(len(ms))
	s.Speed = mean(speeds)
	s.SpeedStd = std(speeds)
	s.Smoothness /= n
	s.Persistence /= n
	return s
}

// mean returns the mean of v, 0 when v is empty.
func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// std returns the population standard deviation of v, 0 when v is empty.
func std(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	m := mean(v)
	var s float64
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(v)))
}
