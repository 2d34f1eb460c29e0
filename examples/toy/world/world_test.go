package world

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
}

func TestValidateNamesField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Size", func(c *Config) { c.Size = 0 }},
		{"Frames", func(c *Config) { c.Frames = 0 }},
		{"Frames", func(c *Config) { c.Frames = -3 }},
		{"MinObjects", func(c *Config) { c.MinObjects = -1 }},
		{"MaxObjects", func(c *Config) { c.MinObjects, c.MaxObjects = 0, 0 }},
		{"MinObjects", func(c *Config) { c.MinObjects, c.MaxObjects = 3, 2 }},
		{"MaxObjects", func(c *Config) { c.MaxObjects = len(Palette) + 1 }},
		{"MinSide", func(c *Config) { c.MinSide = 0 }},
		{"MinSide", func(c *Config) { c.MinSide, c.MaxSide = 12, 11 }},
		{"MaxSide", func(c *Config) { c.MaxSide = c.Size }},
		{"MaxSide", func(c *Config) { c.MaxSide = c.Size + 5 }},
		{"MinSpeed", func(c *Config) { c.MinSpeed = -1 }},
		{"MinSpeed", func(c *Config) { c.MinSpeed = math.NaN() }},
		{"MaxSpeed", func(c *Config) { c.MinSpeed, c.MaxSpeed = 3, 2 }},
		{"MaxSpeed", func(c *Config) { c.MaxSpeed = math.Inf(1) }},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		require.Error(t, err, "%+v", c)
		require.Contains(t, err.Error(), tc.field, "%+v", c)
	}
	c := DefaultConfig()
	c.MinObjects, c.MaxObjects = 0, len(Palette)
	require.NoError(t, c.Validate())
}

func TestSampleDeterministic(t *testing.T) {
	c := DefaultConfig()
	a := c.Sample(rand.New(rand.NewPCG(7, 11)))
	b := c.Sample(rand.New(rand.NewPCG(7, 11)))
	require.Equal(t, a, b)
	differ := false
	for seed := uint64(1); seed < 6 && !differ; seed++ {
		o := c.Sample(rand.New(rand.NewPCG(seed, 11)))
		differ = len(o.Objects) != len(a.Objects) || o.Objects[0] != a.Objects[0]
	}
	require.True(t, differ, "other seeds give other clips")
}

func TestSampleRanges(t *testing.T) {
	c := DefaultConfig()
	r := rand.New(rand.NewPCG(1, 2))
	frame := 3 * c.Size * c.Size
	counts := map[int]int{}
	for n := 0; n < 500; n++ {
		clip := c.Sample(r)
		require.Equal(t, c.Size, clip.Size)
		require.Equal(t, c.Frames, clip.Frames)
		require.Len(t, clip.Pixels, c.Frames*frame)
		require.Len(t, clip.Tracks, len(clip.Objects))
		require.GreaterOrEqual(t, len(clip.Objects), c.MinObjects)
		require.LessOrEqual(t, len(clip.Objects), c.MaxObjects)
		counts[len(clip.Objects)]++
		seen := map[int]bool{}
		for i, o := range clip.Objects {
			require.False(t, seen[o.Color], "colours are distinct")
			seen[o.Color] = true
			require.GreaterOrEqual(t, o.Color, 0)
			require.Less(t, o.Color, len(Palette))
			require.GreaterOrEqual(t, o.Side, c.MinSide)
			require.LessOrEqual(t, o.Side, c.MaxSide)
			speed := math.Hypot(o.VX, o.VY)
			require.GreaterOrEqual(t, speed, c.MinSpeed-1e-9)
			require.LessOrEqual(t, speed, c.MaxSpeed+1e-9)
			room := float64(c.Size - o.Side)
			for f := 0; f < c.Frames; f++ {
				x, y := c.Position(o, f)
				require.GreaterOrEqual(t, x, 0.0)
				require.LessOrEqual(t, x, room)
				require.GreaterOrEqual(t, y, 0.0)
				require.LessOrEqual(t, y, room)
				h := float64(o.Side) / 2
				require.InDelta(t, x+h, clip.Tracks[i][f][0], 1e-12)
				require.InDelta(t, y+h, clip.Tracks[i][f][1], 1e-12)
			}
		}
		for _, v := range clip.Pixels {
			if v < -1 || v > 1 {
				t.Fatalf("pixel %v outside [-1, 1]", v)
			}
		}
	}
	for n := c.MinObjects; n <= c.MaxObjects; n++ {
		require.Greater(t, counts[n], 100, "object count %d is drawn often enough", n)
	}
}

func TestBounce(t *testing.T) {
	c := DefaultConfig()
	c.Frames = 12
	room := float64(c.Size - 10)
	// Heading right from near the right wall, and up from near the top.
	o := Object{Color: 0, Side: 10, X: room - 1, Y: 1, VX: 3, VY: -2}
	xs := make([]float64, c.Frames)
	ys := make([]float64, c.Frames)
	for f := range xs {
		xs[f], ys[f] = c.Position(o, f)
		require.GreaterOrEqual(t, xs[f], 0.0)
		require.LessOrEqual(t, xs[f], room)
		require.GreaterOrEqual(t, ys[f], 0.0)
		require.LessOrEqual(t, ys[f], room)
	}
	require.InDelta(t, room-1, xs[0], 1e-12)
	require.InDelta(t, room-2, xs[1], 1e-12) // room+2 reflected
	require.InDelta(t, room-5, xs[2], 1e-12)
	require.InDelta(t, 1, ys[1], 1e-12) // -1 reflected
	for f := 3; f < c.Frames; f++ {
		require.InDelta(t, -3, xs[f]-xs[f-1], 1e-9, "velocity x flipped")
		require.InDelta(t, 2, ys[f]-ys[f-1], 1e-9, "velocity y flipped")
	}
	// A long run bounces off both walls and stays inside.
	for f := 0; f < 500; f++ {
		x, y := c.Position(Object{Side: 12, X: 5, Y: 40, VX: 4.7, VY: -3.3}, f)
		require.True(t, x >= 0 && x <= float64(c.Size-12) && y >= 0 && y <= float64(c.Size-12))
	}

	// The sampled clip of the bouncing object stays inside the frame too.
	clip := renderClip(c, []Object{o})
	for f := 0; f < c.Frames; f++ {
		require.Equal(t, 100, countColour(c, clip[f*3*c.Size*c.Size:(f+1)*3*c.Size*c.Size], 0))
	}
}

// renderClip renders all frames of objs.
func renderClip(c Config, objs []Object) []float32 {
	frame := 3 * c.Size * c.Size
	px := make([]float32, c.Frames*frame)
	for f := 0; f < c.Frames; f++ {
		c.Render(objs, f, px[f*frame:(f+1)*frame])
	}
	return px
}

// countColour counts the pixels of one frame exactly equal to Palette[k].
func countColour(c Config, frame []float32, k int) int {
	plane := c.Size * c.Size
	n := 0
	for i := 0; i < plane; i++ {
		if frame[i] == 2*Palette[k][0]-1 && frame[plane+i] == 2*Palette[k][1]-1 && frame[2*plane+i] == 2*Palette[k][2]-1 {
			n++
		}
	}
	return n
}

func TestRenderCoverage(t *testing.T) {
	c := DefaultConfig()
	c.Size = 16
	plane := c.Size * c.Size
	dst := make([]float32, 3*plane)
	for i := range dst {
		dst[i] = 0.5 // stale values must be cleared
	}
	// Pixel centres col+0.5 in [2.3, 7.3) give cols 2..6; row centres in
	// [4.7, 9.7) give rows 5..9.
	objs := []Object{
		{Color: 0, Side: 5, X: 2.3, Y: 4.7},
		{Color: 2, Side: 3, X: 6, Y: 9}, // cols 6..8, rows 9..11, over the red one
	}
	c.Render(objs, 0, dst)
	red := map[[2]int]bool{}
	for row := 5; row <= 9; row++ {
		for col := 2; col <= 6; col++ {
			red[[2]int{row, col}] = true
		}
	}
	for row := 0; row < c.Size; row++ {
		for col := 0; col < c.Size; col++ {
			i := row*c.Size + col
			got := [3]float32{dst[i], dst[plane+i], dst[2*plane+i]}
			blue := row >= 9 && row <= 11 && col >= 6 && col <= 8
			switch {
			case blue:
				require.Equal(t, [3]float32{-1, -1, 1}, got, "row %d col %d", row, col)
			case red[[2]int{row, col}]:
				require.Equal(t, [3]float32{1, -1, -1}, got, "row %d col %d", row, col)
			default:
				require.Equal(t, [3]float32{-1, -1, -1}, got, "row %d col %d", row, col)
			}
		}
	}
	require.Panics(t, func() { c.Render(objs, 0, dst[:10]) })
}

func TestFirstFrame(t *testing.T) {
	c := DefaultConfig()
	clip := c.Sample(rand.New(rand.NewPCG(3, 4)))
	first := FirstFrame(clip)
	require.Len(t, first, 3*c.Size*c.Size)
	want := make([]float32, 3*c.Size*c.Size)
	c.Render(clip.Objects, 0, want)
	require.Equal(t, want, first)
}
