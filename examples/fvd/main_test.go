package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch/safetensors"
)

var fixtureDir = filepath.Join("..", "..", "testdata", "fvd")

// writeSet writes the fixture's clips of a set as lossless videos in a
// folder, plus extra files, and returns the folder.
func writeSet(t *testing.T, f *safetensors.File, set string, extra map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), set)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i := 0; ; i++ {
		name := fmt.Sprintf("clips.%s.%d", set, i)
		info, ok := f.Info(name)
		if !ok {
			require.Greater(t, i, 0)
			break
		}
		px, err := f.Bytes(name)
		require.NoError(t, err)
		frames, h, w := int(info.Shape[0]), int(info.Shape[1]), int(info.Shape[2])
		src := filepath.Join(t.TempDir(), "frames")
		require.NoError(t, os.MkdirAll(src, 0o755))
		for k := range frames {
			ppm := append([]byte("P6\n"+strconv.Itoa(w)+" "+strconv.Itoa(h)+"\n255\n"), px[k*w*h*3:(k+1)*w*h*3]...)
			require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("%03d.ppm", k)), ppm, 0o644))
		}
		out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-framerate", "8", "-i", filepath.Join(src, "%03d.ppm"),
			"-c:v", "ffv1", "-pix_fmt", "rgb24", "-y", filepath.Join(dir, fmt.Sprintf("%02d.mkv", i))).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	for name, body := range extra {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	return dir
}

func score(t *testing.T, stdout string) float64 {
	t.Helper()
	line := strings.TrimSpace(stdout)
	require.True(t, strings.HasPrefix(line, "FVD "), "stdout %q", stdout)
	v, err := strconv.ParseFloat(strings.TrimPrefix(line, "FVD "), 64)
	require.NoError(t, err)
	return v
}

func TestFVDCommand(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (the Makefile installs it)")
	}
	f, err := safetensors.Open(filepath.Join(fixtureDir, "fixture.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	b, err := f.Bytes("fd.ab") // the reference's distance of set a (fake) to set b (real)
	require.NoError(t, err)
	want := math.Float64frombits(binary.LittleEndian.Uint64(b))

	fake := writeSet(t, f, "a", map[string]string{"broken.mp4": "not a video"})
	real := writeSet(t, f, "b", nil)
	cache := filepath.Join(t.TempDir(), "features")
	args := []string{"-detector", filepath.Join(fixtureDir, "detector.pt"), "-real", real, "-fake", fake,
		"-frames", "4", "-batch", "3", "-features", cache}
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	got := score(t, stdout.String())
	t.Logf("FVD %.6f, reference %.6f\n%s", got, want, stderr.String())
	require.InEpsilon(t, want, got, 1e-5) // printed with 6 digits
	require.Contains(t, stderr.String(), "skipped")
	require.Contains(t, stderr.String(), "broken.mp4")
	require.Contains(t, stderr.String(), "fake: 10 clips (1 skipped)")
	files, err := filepath.Glob(filepath.Join(cache, "*.safetensors"))
	require.NoError(t, err)
	require.Len(t, files, 2)

	// A second run reuses both sets' features, and a features file stands
	// for a set.
	stdout.Reset()
	stderr.Reset()
	require.NoError(t, run(context.Background(), args, &stdout, &stderr))
	require.Equal(t, 2, strings.Count(stderr.String(), "reused"), stderr.String())
	require.Equal(t, got, score(t, stdout.String()))
	var realFile string
	for _, p := range files {
		if strings.HasPrefix(filepath.Base(p), "b-") {
			realFile = p
		}
	}
	require.NotEmpty(t, realFile)
	stdout.Reset()
	require.NoError(t, run(context.Background(), []string{"-detector", args[1], "-real", realFile, "-fake", fake, "-frames", "4", "-features", cache}, &stdout, &stderr))
	require.Equal(t, got, score(t, stdout.String()))
}

func TestFVDCommandErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "i3d_torchscript.pt")
	err := run(context.Background(), []string{"-detector", missing, "-real", ".", "-fake", "."}, &stdout, &stderr)
	require.ErrorContains(t, err, "i3d_torchscript.pt")
	err = run(context.Background(), []string{"-detector", filepath.Join(fixtureDir, "other_signature.pt"), "-real", ".", "-fake", "."}, &stdout, &stderr)
	require.ErrorContains(t, err, "other_signature.pt")
	require.ErrorContains(t, err, "rescale")
	err = run(context.Background(), []string{"-detector", filepath.Join(fixtureDir, "detector.pt")}, &stdout, &stderr)
	require.ErrorContains(t, err, "-real and -fake")
	err = run(context.Background(), []string{"-detector", filepath.Join(fixtureDir, "detector.pt"), "-real", "x", "-fake", "y", "-spread", "-fps", "4"}, &stdout, &stderr)
	require.ErrorContains(t, err, "-spread")
	err = run(context.Background(), []string{"-detector", filepath.Join(fixtureDir, "detector.pt"), "-real", t.TempDir(), "-fake", "y"}, &stdout, &stderr)
	require.ErrorContains(t, err, "no video files")
}

func TestFVDBench(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-detector", filepath.Join(fixtureDir, "detector.pt"),
		"-bench", "6", "-frames", "4", "-bench-size", "40x30", "-batch", "4"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "Features")
	require.Contains(t, stdout.String(), "clips/s")
	require.Error(t, run(context.Background(), []string{"-detector", filepath.Join(fixtureDir, "detector.pt"), "-bench", "2", "-bench-size", "40"}, &stdout, &stderr))
}
