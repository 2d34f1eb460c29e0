package data

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// haveFFmpeg reports true when ffmpeg is installed; without it, it checks
// that decoding fails with ErrNoFFmpeg (the documented behaviour) and
// skips the test.
func haveFFmpeg(t *testing.T) bool {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		return true
	}
	f := filepath.Join(t.TempDir(), "x.mp4")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o644))
	_, err := Decode(context.Background(), f, small)
	require.ErrorIs(t, err, ErrNoFFmpeg)
	clips, _, wait := Stream(context.Background(), []string{f}, StreamOptions{Options: small})
	for range clips {
	}
	require.ErrorIs(t, wait(), ErrNoFFmpeg)
	t.Skip("ffmpeg is not on PATH (decoding fails with ErrNoFFmpeg, as documented); make test installs ffmpeg and runs this test")
	return false
}

// video writes a test-pattern video of the given length with ffmpeg.
func video(t *testing.T, dir, name string, seconds float64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc=size=80x48:rate=10:duration=%g", seconds), "-pix_fmt", "yuv420p", "-y", path).CombinedOutput()
	require.NoError(t, err, "ffmpeg is needed by these tests (the Makefile installs it): %s", out)
	return path
}

var small = Options{Frames: 4, FPS: 5, Width: 32, Height: 24}

func TestDecode(t *testing.T) {
	if !haveFFmpeg(t) {
		return
	}
	dir := t.TempDir()
	good := video(t, dir, "good.mp4", 2)
	c, err := Decode(context.Background(), good, small)
	require.NoError(t, err)
	require.Equal(t, 4, c.Frames)
	require.Len(t, c.Pixels, 4*32*24*3)
	// The test pattern moves: consecutive frames differ.
	require.False(t, bytes.Equal(c.Frame(0), c.Frame(1)))

	short := video(t, dir, "short.mp4", 0.3)
	_, err = Decode(context.Background(), short, small)
	require.ErrorContains(t, err, "too short")
	corrupt := filepath.Join(dir, "corrupt.mp4")
	require.NoError(t, os.WriteFile(corrupt, bytes.Repeat([]byte{7, 1, 9}, 500), 0o644))
	_, err = Decode(context.Background(), corrupt, small)
	require.ErrorContains(t, err, "corrupt.mp4")
	_, err = Decode(context.Background(), filepath.Join(dir, "missing.mp4"), small)
	require.ErrorContains(t, err, "missing.mp4")
	_, err = Decode(context.Background(), good, Options{Frames: 4, FPS: 5, Width: 31, Height: 24})
	require.ErrorContains(t, err, "even size")
}

func TestListFolderAndCSV(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.mp4", "a.webm", "notes.txt"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	got, err := List(dir, "")
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "a.webm"), filepath.Join(dir, "b.mp4")}, got)

	csvPath := filepath.Join(dir, "OpenVid-1M.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("video,caption,aesthetic score\nx.mp4,\"a cat, walking\",5.1\ny.mp4,dog,4\n"), 0o644))
	got, err = List(csvPath, "/videos")
	require.NoError(t, err)
	require.Equal(t, []string{"/videos/x.mp4", "/videos/y.mp4"}, got)
	got, err = List(csvPath, "")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "x.mp4"), got[0])

	require.NoError(t, os.WriteFile(csvPath, []byte("clip,caption\nx.mp4,cat\n"), 0o644))
	_, err = List(csvPath, "")
	require.ErrorContains(t, err, `no "video" column`)
	_, err = List(filepath.Join(dir, "none"), "")
	require.ErrorContains(t, err, "none")
	empty := t.TempDir()
	_, err = List(empty, "")
	require.ErrorContains(t, err, "no video files")
}

// Stream keeps the input order, skips (and counts, and reports) the bad
// videos, and never holds more than Prefetch clips ahead of the reader.
func TestStream(t *testing.T) {
	if !haveFFmpeg(t) {
		return
	}
	dir := t.TempDir()
	var paths []string
	for i := range 6 {
		paths = append(paths, video(t, dir, fmt.Sprintf("v%d.mp4", i), 1+0.1*float64(i)))
	}
	short := video(t, dir, "short.mp4", 0.3)
	corrupt := filepath.Join(dir, "corrupt.mp4")
	require.NoError(t, os.WriteFile(corrupt, []byte("nonsense"), 0o644))
	all := []string{paths[0], short, paths[1], corrupt, paths[2], filepath.Join(dir, "gone.mp4"), paths[3], paths[4], paths[5]}

	var mu sync.Mutex
	var reported []string
	clips, stats, wait := Stream(context.Background(), all, StreamOptions{Options: small, Workers: 3, Prefetch: 2,
		Report: func(p string, err error) { mu.Lock(); reported = append(reported, filepath.Base(p)); mu.Unlock() }})
	var got []string
	for c := range clips {
		got = append(got, c.Path)
	}
	require.NoError(t, wait())
	require.Equal(t, paths, got, "input order, bad videos skipped")
	require.Equal(t, int64(6), stats.Decoded.Load())
	require.Equal(t, int64(3), stats.Skipped.Load())
	require.ElementsMatch(t, []string{"short.mp4", "corrupt.mp4", "gone.mp4"}, reported)

	// Cancelling stops the stream.
	ctx, cancel := context.WithCancel(context.Background())
	clips, _, wait = Stream(ctx, all, StreamOptions{Options: small, Workers: 2})
	<-clips
	cancel()
	for range clips {
	}
	require.ErrorIs(t, wait(), context.Canceled)
}
