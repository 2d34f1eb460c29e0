package world

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// overlaps reports whether objects a and b cover a common area at
// frame f.
func overlaps(c Config, a, b Object, f int) bool {
	ax, ay := c.Position(a, f)
	bx, by := c.Position(b, f)
	as, bs := float64(a.Side), float64(b.Side)
	return ax < bx+bs && bx < ax+as && ay < by+bs && by < ay+as
}

// addNoise returns px plus Gaussian noise of deviation sigma, clamped to
// [-1, 1].
func addNoise(r *rand.Rand, px []float32, sigma float64) []float32 {
	out := make([]float32, len(px))
	for i, v := range px {
		out[i] = float32(math.Max(-1, math.Min(1, float64(v)+sigma*r.NormFloat64())))
	}
	return out
}

func TestTrackHandBuilt(t *testing.T) {
	c := DefaultConfig()
	c.Frames = 10
	objs := []Object{
		{Color: 3, Side: 10, X: 3.3, Y: 2.8, VX: 2.6, VY: 1.7},
		{Color: 5, Side: 13, X: 46, Y: 8.4, VX: 2.1, VY: 0.35}, // bounces off the right wall
		{Color: 1, Side: 11, X: 20.7, Y: 50.2, VX: -1.45, VY: -0.9},
	}
	for f := 0; f < c.Frames; f++ {
		for i := range objs {
			for j := i + 1; j < len(objs); j++ {
				require.False(t, overlaps(c, objs[i], objs[j], f), "hand-built objects must not overlap")
			}
		}
	}
	px := renderClip(c, objs)
	tracks, found := c.Track(px)
	require.Len(t, tracks, len(Palette))
	require.Len(t, found, len(Palette))
	present := map[int]bool{}
	for _, o := range objs {
		present[o.Color] = true
		h := float64(o.Side) / 2
		for f := 0; f < c.Frames; f++ {
			x, y := c.Position(o, f)
			require.True(t, found[o.Color][f])
			require.InDelta(t, x+h, tracks[o.Color][f][0], 0.5, "colour %d frame %d", o.Color, f)
			require.InDelta(t, y+h, tracks[o.Color][f][1], 0.5, "colour %d frame %d", o.Color, f)
		}
	}
	for k := range Palette {
		if !present[k] {
			for f := 0; f < c.Frames; f++ {
				require.False(t, found[k][f])
			}
		}
	}
}

func TestTrackSampledClips(t *testing.T) {
	c := DefaultConfig()
	r := rand.New(rand.NewPCG(5, 6))
	checked := 0
	for n := 0; n < 100; n++ {
		clip := c.Sample(r)
		tracks, found := c.Track(clip.Pixels)
		for i, o := range clip.Objects {
			for f := 0; f < c.Frames; f++ {
				alone := true
				for j, p := range clip.Objects {
					if j != i && overlaps(c, o, p, f) {
						alone = false
					}
				}
				if !alone {
					continue
				}
				require.True(t, found[o.Color][f])
				require.InDelta(t, clip.Tracks[i][f][0], tracks[o.Color][f][0], 0.5)
				require.InDelta(t, clip.Tracks[i][f][1], tracks[o.Color][f][1], 0.5)
				checked++
			}
		}
	}
	require.Greater(t, checked, 1000)
}

func TestTrackNeedsMinPixels(t *testing.T) {
	c := DefaultConfig()
	c.Frames = 1
	c.MinSide = 2
	tiny := renderClip(c, []Object{{Color: 0, Side: 2, X: 10, Y: 10}})
	_, found := c.Track(tiny)
	require.False(t, found[0][0], "4 pixels are below MinPixels")
	small := renderClip(c, []Object{{Color: 0, Side: 3, X: 10, Y: 10}})
	_, found = c.Track(small)
	require.True(t, found[0][0], "9 pixels reach MinPixels")
	require.Panics(t, func() { c.Track(small[:100]) })
}

func TestTrackOffColour(t *testing.T) {
	c := DefaultConfig()
	c.Frames = 1
	px := renderClip(c, []Object{{Color: 4, Side: 12, X: 20, Y: 20}})
	// Dim the magenta square to 0.8 in [0, 1]: distance 0.28 from magenta.
	for i, v := range px {
		if v == 1 {
			px[i] = 0.6
		}
	}
	tracks, found := c.Track(px)
	require.True(t, found[4][0])
	require.InDelta(t, 26, tracks[4][0][0], 1e-9)
	require.InDelta(t, 26, tracks[4][0][1], 1e-9)
	// Halfway between magenta and red belongs to neither.
	for i, v := range px {
		if v == 0.6 && i >= 2*c.Size*c.Size {
			px[i] = 0
		}
	}
	_, found = c.Track(px)
	require.False(t, found[4][0])
	require.False(t, found[0][0])
}

// noBounceClip is a clip with two objects moving at integer velocities of
// lengths 5 and 2 without bouncing or overlapping.
func noBounceClip() (Config, []Object) {
	c := DefaultConfig()
	objs := []Object{
		{Color: 0, Side: 10, X: 4.2, Y: 3.6, VX: 3, VY: 4},  // ends at (25.2, 31.6)
		{Color: 2, Side: 12, X: 50, Y: 47.5, VX: -2, VY: 0}, // ends at x = 36
	}
	return c, objs
}

func TestMeasureMotionClean(t *testing.T) {
	c, objs := noBounceClip()
	for f := 0; f < c.Frames; f++ {
		require.False(t, overlaps(c, objs[0], objs[1], f))
		for _, o := range objs {
			x, y := c.Position(o, f)
			require.InDelta(t, o.X+o.VX*float64(f), x, 1e-12, "no bounce")
			require.InDelta(t, o.Y+o.VY*float64(f), y, 1e-12, "no bounce")
		}
	}
	one := c.MeasureMotion(renderClip(c, objs[:1]))
	require.InDelta(t, 5, one.Speed, 0.1)
	require.InDelta(t, 0, one.Smoothness, 1e-9)
	require.Equal(t, 1.0, one.Persistence)
	require.Equal(t, 1, one.Objects)

	px := renderClip(c, objs)
	two := c.MeasureMotion(px)
	require.InDelta(t, 3.5, two.Speed, 0.1)
	require.InDelta(t, 0, two.Smoothness, 1e-9)
	require.Equal(t, 1.0, two.Persistence)
	require.Equal(t, 2, two.Objects)

	noisy := c.MeasureMotion(addNoise(rand.New(rand.NewPCG(9, 9)), px, 0.1))
	require.InDelta(t, 3.5, noisy.Speed, 0.3)
	require.Equal(t, 1.0, noisy.Persistence)
	require.Equal(t, 2, noisy.Objects)
}

// staticVideo repeats frame 0 of px over all frames.
func staticVideo(c Config, px []float32) []float32 {
	frame := 3 * c.Size * c.Size
	out := make([]float32, len(px))
	for f := 0; f < len(px)/frame; f++ {
		copy(out[f*frame:], px[:frame])
	}
	return out
}

func TestMeasureMotionStaticAndEmpty(t *testing.T) {
	c, objs := noBounceClip()
	m := c.MeasureMotion(staticVideo(c, renderClip(c, objs)))
	require.Equal(t, 0.0, m.Speed)
	require.Equal(t, 0.0, m.Smoothness)
	require.Equal(t, 1.0, m.Persistence)
	require.Equal(t, 2, m.Objects)

	empty := c.MeasureMotion(renderClip(c, nil))
	require.Equal(t, Motion{}, empty)

	// An object that leaves (here: is not drawn after frame 3) lowers
	// persistence: it is found in 3 of the 7 later frames.
	px := renderClip(c, objs[:1])
	frame := 3 * c.Size * c.Size
	for i := 4 * frame; i < len(px); i++ {
		px[i] = -1
	}
	gone := c.MeasureMotion(px)
	require.InDelta(t, 3.0/7, gone.Persistence, 1e-12)
	require.InDelta(t, 5, gone.Speed, 0.1)
}

func TestMeasureMotionBounceSpikes(t *testing.T) {
	c := DefaultConfig()
	// x runs 44, 48, 52, 52 (56 reflected), 48, 44, 40, 36: steps 4, 4, 0,
	// -4, -4, -4, -4 and second differences 0, -4, -4, 0, 0, 0.
	o := Object{Color: 1, Side: 10, X: 44, Y: 20, VX: 4, VY: 0}
	m := c.MeasureMotion(renderClip(c, []Object{o}))
	require.InDelta(t, 24.0/7, m.Speed, 1e-9)
	require.InDelta(t, 8.0/6, m.Smoothness, 1e-9)
}

func TestSummarize(t *testing.T) {
	s := Summarize([]Motion{
		{Speed: 1, Smoothness: 0, Persistence: 1},
		{Speed: 3, Smoothness: 2, Persistence: 0.5},
	})
	require.Equal(t, MotionSummary{Speed: 2, SpeedStd: 1, Smoothness: 1, Persistence: 0.75, Clips: 2}, s)
	require.Equal(t, MotionSummary{}, Summarize(nil))
}

func TestSummarizeSampledClips(t *testing.T) {
	c := DefaultConfig()
	r := rand.New(rand.NewPCG(21, 22))
	ms := make([]Motion, 200)
	for i := range ms {
		ms[i] = c.MeasureMotion(c.Sample(r).Pixels)
	}
	s := Summarize(ms)
	require.Equal(t, 200, s.Clips)
	require.Greater(t, s.Speed, c.MinSpeed-0.5)
	require.Less(t, s.Speed, c.MaxSpeed+0.5)
	require.Greater(t, s.SpeedStd, 0.1)
	require.Greater(t, s.Persistence, 0.95)
}

func TestFeatures(t *testing.T) {
	require.Len(t, FeatureNames, NumFeatures)
	c, objs := noBounceClip()
	px := renderClip(c, objs)
	f := c.Features(px)
	require.Len(t, f, NumFeatures)
	require.Equal(t, 2.0, f[0])
	require.Equal(t, 2.0, f[1])
	fg := float64(100+144) / float64(c.Size*c.Size)
	require.InDelta(t, fg, f[2], 1e-12)
	require.InDelta(t, 0, f[3], 1e-12)
	require.Greater(t, f[4], 0.0)
	require.InDelta(t, 3.5, f[6], 0.1)
	require.InDelta(t, 1.5, f[7], 0.1)
	require.InDelta(t, 0, f[8], 1e-9)
	require.Equal(t, 1.0, f[9])
	area := (100.0 + 121 + 144 + 169 + 196) / 5
	require.InDelta(t, (100+144)/area/2, f[10], 1e-12)
	require.Equal(t, 1.0, f[12])
	require.InDelta(t, 100/float64(c.Size*c.Size), f[13], 1e-9) // red
	require.InDelta(t, 0, f[14], 1e-9)                          // green
	require.InDelta(t, 144/float64(c.Size*c.Size), f[15], 1e-9) // blue

	static := c.Features(staticVideo(c, px))
	require.Equal(t, 0.0, static[4])
	require.Equal(t, 0.0, static[6])

	// The length does not depend on the number of objects.
	require.Len(t, c.Features(renderClip(c, nil)), NumFeatures)
	c.Frames = 1
	require.Len(t, c.Features(renderClip(c, objs)), NumFeatures)
}

// gaussianSet draws n rows of d correlated Gaussian features.
func gaussianSet(r *rand.Rand, n, d int, shift float64) [][]float64 {
	set := make([][]float64, n)
	for i := range set {
		row := make([]float64, d)
		var acc float64
		for j := range row {
			acc = 0.6*acc + r.NormFloat64()
			row[j] = acc*float64(j+1) + shift
		}
		set[i] = row
	}
	return set
}

func TestFrechetBasics(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	x := gaussianSet(r, 300, 6, 0)
	y := gaussianSet(r, 250, 6, 0.5)
	self, err := Frechet(x, x)
	require.NoError(t, err)
	_, cov := moments(x, 6)
	var tr float64
	for j := range cov {
		tr += cov[j][j]
	}
	require.LessOrEqual(t, self, 1e-9*tr)

	xy, err := Frechet(x, y)
	require.NoError(t, err)
	yx, err := Frechet(y, x)
	require.NoError(t, err)
	require.Greater(t, xy, 1.0)
	require.InDelta(t, xy, yx, 1e-9*xy)

	// A rank-deficient covariance (one constant feature) is fine.
	for _, row := range x {
		row[2] = 4
	}
	self, err = Frechet(x, x)
	require.NoError(t, err)
	require.LessOrEqual(t, self, 1e-9*tr)

	_, err = Frechet(nil, y)
	require.Error(t, err)
	_, err = Frechet(x, [][]float64{})
	require.Error(t, err)
	_, err = Frechet(x, [][]float64{{1, 2}})
	require.Error(t, err)
	_, err = Frechet([][]float64{{1, 2}, {1}}, [][]float64{{1, 2}})
	require.Error(t, err)
	_, err = Frechet([][]float64{{1, math.NaN()}}, [][]float64{{1, 2}})
	require.Error(t, err)

	// One row per set: only the means count.
	single, err := Frechet([][]float64{{1, 2}}, [][]float64{{4, 6}})
	require.NoError(t, err)
	require.InDelta(t, 25, single, 1e-12)
}

func TestFrechetGaussian1D(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	const n = 20000
	a := make([][]float64, n)
	b := make([][]float64, n)
	for i := 0; i < n; i++ {
		a[i] = []float64{1 + 2*r.NormFloat64()}
		b[i] = []float64{3 + 0.5*r.NormFloat64()}
	}
	d, err := Frechet(a, b)
	require.NoError(t, err)
	require.InDelta(t, 4+2.25, d, 0.15) // (1-3)² + (2-0.5)²
}

func TestStandardize(t *testing.T) {
	ref := [][]float64{{1, 10, 5}, {3, 30, 5}}
	out, err := Standardize(ref, ref, [][]float64{{2, 40, 6}})
	require.NoError(t, err)
	require.Len(t, out, 2)
	s := math.Sqrt(2) // sample deviation of {1, 3}
	require.InDeltaSlice(t, []float64{-1 / s, -1 / s, 0}, out[0][0], 1e-12)
	require.InDeltaSlice(t, []float64{1 / s, 1 / s, 0}, out[0][1], 1e-12)
	require.InDeltaSlice(t, []float64{0, 20 / (10 * s), 1}, out[1][0], 1e-12)
	require.Equal(t, []float64{1, 10, 5}, ref[0], "inputs are left alone")
	_, err = Standardize(nil, ref)
	require.Error(t, err)
	_, err = Standardize(ref, [][]float64{{1, 2}})
	require.Error(t, err)
}

func TestWasserstein1(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 7))
	a := make([]float64, 500)
	for i := range a {
		a[i] = r.NormFloat64()
	}
	require.Equal(t, 0.0, Wasserstein1(a, a))
	shifted := make([]float64, len(a))
	for i, v := range a {
		shifted[i] = v + 1.7
	}
	require.InDelta(t, 1.7, Wasserstein1(a, shifted), 1e-12)
	require.InDelta(t, 1.7, Wasserstein1(shifted, a), 1e-12)
	// Different sizes: quantile functions 0|1 on halves and 0|0.5|1 on
	// thirds differ by 0.5 on [1/3, 2/3).
	require.InDelta(t, 1.0/6, Wasserstein1([]float64{1, 0}, []float64{0, 0.5, 1}), 1e-12)
	require.InDelta(t, 2.5, Wasserstein1([]float64{1, 2, 3, 4}, []float64{5}), 1e-12)
	require.True(t, math.IsNaN(Wasserstein1(nil, a)))
}

func TestFrechetSeparatesVideos(t *testing.T) {
	c := DefaultConfig()
	r := rand.New(rand.NewPCG(10, 20))
	const n = 200
	real1 := make([][]float64, n)
	real2 := make([][]float64, n)
	static := make([][]float64, n)
	noise := make([][]float64, n)
	speeds1 := make([]float64, n)
	speeds2 := make([]float64, n)
	noisePx := make([]float32, c.Frames*3*c.Size*c.Size)
	for i := 0; i < n; i++ {
		a := c.Sample(r).Pixels
		real1[i] = c.Features(a)
		speeds1[i] = real1[i][6]
		b := c.Sample(r).Pixels
		real2[i] = c.Features(b)
		speeds2[i] = real2[i][6]
		static[i] = c.Features(staticVideo(c, b))
		for j := range noisePx {
			noisePx[j] = 2*r.Float32() - 1
		}
		noise[i] = c.Features(noisePx)
	}
	sets, err := Standardize(real1, real1, real2, static, noise)
	require.NoError(t, err)
	same, err := Frechet(sets[0], sets[1])
	require.NoError(t, err)
	toStatic, err := Frechet(sets[0], sets[2])
	require.NoError(t, err)
	toNoise, err := Frechet(sets[0], sets[3])
	require.NoError(t, err)
	t.Logf("Fréchet real/real' %.3f, real/static %.3f, real/noise %.3f", same, toStatic, toNoise)
	require.Greater(t, toStatic, 5*same)
	require.Greater(t, toNoise, 5*same)

	staticSpeeds := make([]float64, n)
	for i := range static {
		staticSpeeds[i] = static[i][6]
	}
	w := Wasserstein1(speeds1, speeds2)
	ws := Wasserstein1(speeds1, staticSpeeds)
	t.Logf("speed W1 real/real' %.3f, real/static %.3f", w, ws)
	require.Greater(t, ws, 5*w)
}

// Each feature's term is the one-dimensional Fréchet distance, and over
// features uncorrelated in both sets the terms add up to Frechet's.
func TestFeatureTerms(t *testing.T) {
	var a, b [][]float64
	for _, s0 := range []float64{-1, 1} {
		for _, s1 := range []float64{-1, 1} {
			a = append(a, []float64{s0, 2 * s1})
			b = append(b, []float64{3 + 2*s0, -1 + 0.5*s1})
		}
	}
	terms, err := FeatureTerms(a, b)
	require.NoError(t, err)
	// Feature 0: means 0 and 3, deviations √(4/3) and 2√(4/3).
	// Feature 1: means 0 and −1, deviations 2√(4/3) and √(1/3).
	require.InDeltaSlice(t, []float64{9 + 4.0/3, 1 + 3}, terms, 1e-12)
	fd, err := Frechet(a, b)
	require.NoError(t, err)
	require.InDelta(t, terms[0]+terms[1], fd, 1e-9)

	_, err = FeatureTerms(a, [][]float64{{1, 2, 3}})
	require.ErrorContains(t, err, "2 and 3 values")
	_, err = FeatureTerms(nil, b)
	require.ErrorContains(t, err, "feature set a is empty")
	_, err = FeatureTerms(a, [][]float64{{1, math.Inf(1)}})
	require.ErrorContains(t, err, "feature set b: row 0 value 1")
}
