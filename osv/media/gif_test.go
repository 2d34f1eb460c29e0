package media

import (
	"image"
	"image/color"
	"image/gif"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func readGIF(t *testing.T, path string) *gif.GIF {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	g, err := gif.DecodeAll(f)
	require.NoError(t, err)
	return g
}

func TestWriteGIFReadsBack(t *testing.T) {
	frames := []image.Image{flat(16, 12, red), bands(16, 12, 5, 11), flat(16, 12, blue)}
	path := filepath.Join(t.TempDir(), "clip.gif")
	require.NoError(t, WriteGIF(path, frames, 7))
	g := readGIF(t, path)
	require.Len(t, g.Image, 3)
	require.Equal(t, []int{14, 14, 14}, g.Delay)
	require.Equal(t, 0, g.LoopCount, "loops forever")
	require.Equal(t, 16, g.Config.Width)
	require.Equal(t, 12, g.Config.Height)
	// A clip of a few flat colours comes back exactly.
	for i, f := range frames {
		require.Equal(t, image.Rect(0, 0, 16, 12), g.Image[i].Bounds())
		requireSamePixels(t, f, g.Image[i])
	}
	require.Equal(t, []string{"clip.gif"}, dirNames(t, filepath.Dir(path)), "no temporary file left")
}

func TestWriteGIFDelay(t *testing.T) {
	frames := []image.Image{flat(4, 4, red), flat(4, 4, green)}
	for fps, want := range map[float64]int{25: 4, 8: 13, 14: 7, 100: 2, 60: 2, 0.5: 200} {
		path := filepath.Join(t.TempDir(), "d.gif")
		require.NoError(t, WriteGIF(path, frames, fps))
		require.Equal(t, []int{want, want}, readGIF(t, path).Delay, "fps %v", fps)
	}
}

func TestWriteGIFQuality(t *testing.T) {
	// A smooth two-axis gradient with more colours than a palette holds:
	// the median-cut palette and dithering keep every pixel close, and the
	// mean over any 4×4 block closer still.
	const w, h = 64, 48
	grad := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			grad.SetNRGBA(x, y, color.NRGBA{uint8(4 * x), uint8(5 * y), uint8(255 - 2*x - y), 255})
		}
	}
	path := filepath.Join(t.TempDir(), "grad.gif")
	require.NoError(t, WriteGIF(path, []image.Image{grad, grad}, 7))
	g := readGIF(t, path)
	worstPixel, worstBlock := 0.0, 0.0
	for by := 0; by < h; by += 4 {
		for bx := 0; bx < w; bx += 4 {
			var sum [3]float64
			for y := by; y < by+4; y++ {
				for x := bx; x < bx+4; x++ {
					want, got := rgbAt(grad, x, y), rgbAt(g.Image[0], x, y)
					for c := range 3 {
						d := float64(got[c]) - float64(want[c])
						sum[c] += d
						worstPixel = math.Max(worstPixel, math.Abs(d))
					}
				}
			}
			for c := range 3 {
				worstBlock = math.Max(worstBlock, math.Abs(sum[c]/16))
			}
		}
	}
	t.Logf("gradient GIF: largest pixel error %.0f levels, largest 4×4 mean error %.2f levels", worstPixel, worstBlock)
	require.LessOrEqual(t, worstPixel, 24.0)
	require.LessOrEqual(t, worstBlock, 4.0)
	requireSamePixels(t, g.Image[0], g.Image[1]) // same frame, same pixels: no flicker
}

func TestWriteGIFRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.gif")
	for _, tc := range []struct {
		frames []image.Image
		fps    float64
		msg    string
	}{
		{nil, 7, "no frames to write"},
		{[]image.Image{flat(4, 4, red), flat(4, 5, red)}, 7, "frame 1 is 4×5 but frame 0 is 4×4"},
		{[]image.Image{flat(4, 4, red), nil}, 7, "frame 1 is nil or has no pixels"},
		{[]image.Image{flat(4, 4, red)}, 0, "frame rate 0 must be a positive number"},
		{[]image.Image{flat(4, 4, red)}, math.NaN(), "frame rate NaN must be a positive number"},
		{[]image.Image{flat(4, 4, red)}, math.Inf(1), "frame rate +Inf must be a positive number"},
	} {
		err := WriteGIF(path, tc.frames, tc.fps)
		require.ErrorContains(t, err, "writing GIF "+path+": "+tc.msg)
	}
	require.Empty(t, dirNames(t, dir))
	err := WriteGIF(filepath.Join(dir, "missing", "x.gif"), []image.Image{flat(4, 4, red)}, 7)
	require.ErrorContains(t, err, filepath.Join(dir, "missing"))
}
