package data

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// numbered writes a video of n frames, each a uniform grey of level
// 10·i, with ffmpeg; the frame index comes back from a decoded frame's
// first pixel.
func numbered(t *testing.T, dir string, n, w, h int) string {
	t.Helper()
	src := filepath.Join(dir, "frames")
	require.NoError(t, os.MkdirAll(src, 0o755))
	for i := range n {
		img := make([]byte, w*h*3)
		for j := range img {
			img[j] = byte(10 * i)
		}
		ppm := append([]byte(fmt.Sprintf("P6\n%d %d\n255\n", w, h)), img...)
		require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("%03d.ppm", i)), ppm, 0o644))
	}
	path := filepath.Join(dir, "numbered.mkv")
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-framerate", "10", "-i", filepath.Join(src, "%03d.ppm"),
		"-c:v", "ffv1", "-pix_fmt", "rgb24", "-y", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return path
}

func level(c *Clip, i int) int { return int(c.Frame(i)[0]) }

func TestDecodeFrames(t *testing.T) {
	if !haveFFmpeg(t) {
		return
	}
	dir := t.TempDir()
	ctx := context.Background()
	path := numbered(t, dir, 20, 34, 22)

	// The first T frames, at the video's own size (odd sizes too).
	c, err := DecodeFrames(ctx, path, FrameOptions{Frames: 5})
	require.NoError(t, err)
	require.Equal(t, []int{5, 34, 22}, []int{c.Frames, c.Width, c.Height})
	require.Len(t, c.Pixels, 5*34*22*3)
	for i := range 5 {
		require.Equal(t, 10*i, level(c, i), "frame %d", i)
	}

	// Evenly spaced: frames ⌊i·20/4⌋ = 0, 5, 10, 15.
	c, err = DecodeFrames(ctx, path, FrameOptions{Frames: 4, Spread: true})
	require.NoError(t, err)
	require.Equal(t, 4, c.Frames)
	for i, want := range []int{0, 5, 10, 15} {
		require.Equal(t, 10*want, level(c, i), "frame %d", i)
	}

	// Resampled from 10 to 5 fps: every other frame.
	c, err = DecodeFrames(ctx, path, FrameOptions{Frames: 3, FPS: 5})
	require.NoError(t, err)
	for i := range 3 {
		require.Equal(t, 20*i, level(c, i), "frame %d", i)
	}

	// Too short, unreadable, missing and contradictory options.
	_, err = DecodeFrames(ctx, path, FrameOptions{Frames: 21})
	require.ErrorContains(t, err, "too short")
	_, err = DecodeFrames(ctx, path, FrameOptions{Frames: 21, Spread: true})
	require.ErrorContains(t, err, "too short")
	bad := filepath.Join(dir, "bad.mp4")
	require.NoError(t, os.WriteFile(bad, []byte("not a video"), 0o644))
	_, err = DecodeFrames(ctx, bad, FrameOptions{Frames: 2})
	require.ErrorContains(t, err, "bad.mp4")
	_, err = DecodeFrames(ctx, filepath.Join(dir, "none.mp4"), FrameOptions{})
	require.Error(t, err)
	_, err = DecodeFrames(ctx, path, FrameOptions{Frames: 2, FPS: 5, Spread: true})
	require.Error(t, err)

	// Through Stream, skipping and counting the unreadable one.
	var skipped []string
	clips, stats, wait := Stream(ctx, []string{path, bad, path}, StreamOptions{
		Decode: func(ctx context.Context, p string) (*Clip, error) {
			return DecodeFrames(ctx, p, FrameOptions{Frames: 2})
		},
		Report: func(p string, err error) { skipped = append(skipped, p) },
	})
	var got []*Clip
	for c := range clips {
		got = append(got, c)
	}
	require.NoError(t, wait())
	require.Len(t, got, 2)
	require.Equal(t, int64(1), stats.Skipped.Load())
	require.Equal(t, []string{bad}, skipped)
	require.True(t, bytes.Equal(got[0].Pixels, got[1].Pixels))
}

func TestReadPPMs(t *testing.T) {
	two := []byte("P6\n2 1\n255\n\x01\x02\x03\x04\x05\x06P6 2 1 255\n\x07\x08\x09\x0a\x0b\x0c")
	c, err := readPPMs(bytes.NewReader(two), 5)
	require.NoError(t, err)
	require.Equal(t, 2, c.Frames)
	require.Equal(t, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, c.Pixels)
	_, err = readPPMs(bytes.NewReader(two[:len(two)-1]), 5)
	require.ErrorContains(t, err, "truncated")
	_, err = readPPMs(bytes.NewReader([]byte("P5\n2 1\n255\n\x01\x02")), 5)
	require.ErrorContains(t, err, "magic")
	_, err = readPPMs(bytes.NewReader(append(two[:17], []byte("P6\n3 1\n255\n123456789")...)), 5)
	require.ErrorContains(t, err, "frame 0")
}
