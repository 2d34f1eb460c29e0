package world

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Config describes the world.
type Config struct {
	Size       int     // frame side in pixels
	Frames     int     // frames per clip
	MinObjects int     // fewest squares in a clip
	MaxObjects int     // most squares in a clip, at most len(Palette)
	MinSide    int     // smallest square side in pixels
	MaxSide    int     // largest square side in pixels, less than Size
	MinSpeed   float64 // slowest speed in pixels per frame
	MaxSpeed   float64 // fastest speed in pixels per frame
}

// DefaultConfig returns 8-frame 64×64 clips with 1 to 3 squares of side 10
// to 14 moving at 2 to 5 pixels per frame.
func DefaultConfig() Config {
	return Config{
		Size:       64,
		Frames:     8,
		MinObjects: 1,
		MaxObjects: 3,
		MinSide:    10,
		MaxSide:    14,
		MinSpeed:   2,
		MaxSpeed:   5,
	}
}

// Validate reports the first field of c that is out of range.
func (c Config) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Size <= 0:
		return fmt.Errorf("world: Size must be positive, got %d", c.Size)
	case c.Frames <= 0:
		return fmt.Errorf("world: Frames must be positive, got %d", c.Frames)
	case c.MinObjects < 0:
		return fmt.Errorf("world: MinObjects must not be negative, got %d", c.MinObjects)
	case c.MaxObjects < 1:
		return fmt.Errorf("world: MaxObjects must be at least 1, got %d", c.MaxObjects)
	case c.MinObjects > c.MaxObjects:
		return fmt.Errorf("world: MinObjects (%d) must not exceed MaxObjects (%d)", c.MinObjects, c.MaxObjects)
	case c.MaxObjects > len(Palette):
		return fmt.Errorf("world: MaxObjects (%d) must not exceed the palette size (%d)", c.MaxObjects, len(Palette))
	case c.MinSide < 1:
		return fmt.Errorf("world: MinSide must be at least 1, got %d", c.MinSide)
	case c.MinSide > c.MaxSide:
		return fmt.Errorf("world: MinSide (%d) must not exceed MaxSide (%d)", c.MinSide, c.MaxSide)
	case c.MaxSide >= c.Size:
		return fmt.Errorf("world: MaxSide (%d) must be less than Size (%d)", c.MaxSide, c.Size)
	case !finite(c.MinSpeed) || c.MinSpeed < 0:
		return fmt.Errorf("world: MinSpeed must be finite and not negative, got %v", c.MinSpeed)
	case !finite(c.MaxSpeed) || c.MaxSpeed < c.MinSpeed:
		return fmt.Errorf("world: MaxSpeed (%v) must be finite and at least MinSpeed (%v)", c.MaxSpeed, c.MinSpeed)
	}
	return nil
}

// Palette holds the object colours as RGB in [0, 1]: red, green, blue,
// yellow, magenta and cyan. Any two of them, and any of them and black, are
// at least a Euclidean distance of 1 apart.
var Palette = [][3]float32{
	{1, 0, 0},
	{0, 1, 0},
	{0, 0, 1},
	{1, 1, 0},
	{1, 0, 1},
	{0, 1, 1},
}

// Object is one square of a clip.
type Object struct {
	Color  int     // index into Palette
	Side   int     // side in pixels
	X, Y   float64 // top-left corner at frame 0, pixels
	VX, VY float64 // velocity at frame 0, pixels per frame
}

// Clip is one sampled video with its ground truth.
type Clip struct {
	Size, Frames int // copied from the Config that drew the clip
	Objects      []Object
	// Pixels holds Frames×3×Size×Size float32 values in [-1, 1],
	// frame-major, then channel, row, column (CHW per frame). The
	// background is -1 (black); an object pixel is 2*colour-1.
	Pixels []float32
	// Tracks[i][t] is object i's true centre (x, y) in pixels at frame t.
	Tracks [][][2]float64
}

// FirstFrame returns frame 0 of c (3×Size×Size values, CHW). The result
// shares storage with c.Pixels.
func FirstFrame(c Clip) []float32 {
	n := 3 * c.Size * c.Size
	return c.Pixels[:n:n]
}

// Sample draws a clip: the object count is uniform in [MinObjects,
// MaxObjects], the colours are distinct palette entries, each side is
// uniform in [MinSide, MaxSide], each top-left corner is uniform over the
// positions that keep the square inside the frame, and each velocity has a
// speed uniform in [MinSpeed, MaxSpeed] and a uniform direction. The clip
// depends only on c and the state of r. Sample panics when c is not valid.
func (c Config) Sample(r *rand.Rand) Clip {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	n := c.MinObjects + r.IntN(c.MaxObjects-c.MinObjects+1)
	colors := r.Perm(len(Palette))[:n]
	objs := make([]Object, n)
	for i := range objs {
		side := c.MinSide + r.IntN(c.MaxSide-c.MinSide+1)
		room := float64(c.Size - side)
		speed := c.MinSpeed + r.Float64()*(c.MaxSpeed-c.MinSpeed)
		angle := 2 * math.Pi * r.Float64()
		objs[i] = Object{
			Color: colors[i],
			Side:  side,
			X:     r.Float64() * room,
			Y:     r.Float64() * room,
			VX:    speed * math.Cos(angle),
			VY:    speed * math.Sin(angle),
		}
	}
	frame := 3 * c.Size * c.Size
	clip := Clip{
		Size:    c.Size,
		Frames:  c.Frames,
		Objects: objs,
		Pixels:  make([]float32, c.Frames*frame),
		Tracks:  make([][][2]float64, n),
	}
	for t := 0; t < c.Frames; t++ {
		c.Render(objs, t, clip.Pixels[t*frame:(t+1)*frame])
	}
	for i, o := range objs {
		clip.Tracks[i] = make([][2]float64, c.Frames)
		h := float64(o.Side) / 2
		for t := range clip.Tracks[i] {
			x, y := c.Position(o, t)
			clip.Tracks[i][t] = [2]float64{x + h, y + h}
		}
	}
	return clip
}

// reflect folds p into [0, room] as a point bouncing between two walls.
func reflect(p, room float64) float64 {
	if room <= 0 {
		return 0
	}
	period := 2 * room
	m := math.Mod(p, period)
	if m < 0 {
		m += period
	}
	if m > room {
		m = period - m
	}
	return m
}

// Position returns the top-left corner of o at frame t: X + VX·t reflected
// into [0, Size-Side], so that the square bounces elastically off the
// walls, and the same for Y.
func (c Config) Position(o Object, t int) (x, y float64) {
	room := float64(c.Size - o.Side)
	return reflect(o.X+o.VX*float64(t), room), reflect(o.Y+o.VY*float64(t), room)
}

// span returns the pixel indices [lo, hi) whose centres i+0.5 lie in the
// continuous interval [a, a+side), clipped to [0, size).
func span(a float64, side, size int) (lo, hi int) {
	lo = int(math.Ceil(a - 0.5))
	hi = int(math.Ceil(a + float64(side) - 0.5))
	return max(lo, 0), min(hi, size)
}

// Render draws objs at frame t into dst, which must hold 3×Size×Size values
// (CHW). The background is -1; the motion is the one of Position. Pixel
// (row, col) belongs to a square with top-left corner (x, y) when the pixel
// centre (col+0.5, row+0.5) lies in [x, x+Side) × [y, y+Side). Later
// objects are drawn over earlier ones.
func (c Config) Render(objs []Object, t int, dst []float32) {
	s := c.Size
	plane := s * s
	if len(dst) != 3*plane {
		panic(errors.New("world: Render needs a destination of 3×Size×Size values"))
	}
	for i := range dst {
		dst[i] = -1
	}
	for _, o := range objs {
		x, y := c.Position(o, t)
		c0, c1 := span(x, o.Side, s)
		r0, r1 := span(y, o.Side, s)
		col := Palette[o.Color]
		for ch := 0; ch < 3; ch++ {
			v := 2*col[ch] - 1
			p := dst[ch*plane : (ch+1)*plane]
			for row := r0; row < r1; row++ {
				line := p[row*s+c0 : row*s+c1]
				for j := range line {
					line[j] = v
				}
			}
		}
	}
}
