package media

import (
	"image"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteMP4 runs the real ffmpeg and checks the video (without ffmpeg,
// TestWriteMP4WithoutFFmpeg checks the error that says how to install it).
func TestWriteMP4(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not on PATH; make test installs ffmpeg and runs this test")
	}
	frames := []image.Image{randomNRGBA(16, 16, 20), randomNRGBA(16, 16, 21), randomNRGBA(16, 16, 22)}
	dir := t.TempDir()
	path := filepath.Join(dir, "clip.mp4")
	require.NoError(t, WriteMP4(path, frames, 7))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Positive(t, st.Size())
	t.Logf("wrote a %d-byte MP4", st.Size())
	require.Equal(t, []string{"clip.mp4"}, dirNames(t, dir), "no temporary file left")
}

func requireNoFFmpegError(t *testing.T, err error, path string) {
	t.Helper()
	require.ErrorIs(t, err, ErrNoFFmpeg)
	require.ErrorContains(t, err, "writing MP4 "+path)
	require.ErrorContains(t, err, "ffmpeg program is not on PATH")
	require.ErrorContains(t, err, "apt-get install ffmpeg")
	_, serr := os.Stat(path)
	require.ErrorIs(t, serr, os.ErrNotExist)
}

func TestWriteMP4WithoutFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	path := filepath.Join(t.TempDir(), "clip.mp4")
	requireNoFFmpegError(t, WriteMP4(path, []image.Image{flat(4, 4, red)}, 7), path)
}

// fakeFFmpeg puts an ffmpeg script on PATH (and nothing else) that runs
// body with $args and $out set to its arguments file and last argument.
func fakeFFmpeg(t *testing.T, body string) (argsFile string) {
	t.Helper()
	cat, err := exec.LookPath("cat")
	require.NoError(t, err)
	bin := t.TempDir()
	argsFile = filepath.Join(t.TempDir(), "args")
	script := "#!/bin/sh\nargs=" + argsFile + "\nfor a; do out=$a; done\nfor a; do echo \"$a\"; done > \"$args\"\n" +
		strings.ReplaceAll(body, "cat", cat) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "ffmpeg"), []byte(script), 0o755))
	t.Setenv("PATH", bin)
	return argsFile
}

func TestWriteMP4PipesPaddedRGBFrames(t *testing.T) {
	// The fake ffmpeg copies its input to the output file, so the file
	// holds exactly the bytes WriteMP4 piped.
	args := fakeFFmpeg(t, `cat > "$out"`)
	a, b := randomNRGBA(5, 3, 30), randomNRGBA(5, 3, 31)
	path := filepath.Join(t.TempDir(), "odd.mp4")
	require.NoError(t, WriteMP4(path, []image.Image{a, b}, 7.5))

	got, err := os.ReadFile(args)
	require.NoError(t, err)
	argv := strings.Fields(string(got))
	require.Subset(t, argv, []string{"-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "6x4", "-r", "7.5", "-i", "-", "-c:v", "libx264", "yuv420p", "-y"})
	require.Equal(t, "6x4", argv[indexOf(argv, "-s")+1])
	require.Equal(t, "7.5", argv[indexOf(argv, "-r")+1])
	require.Equal(t, "libx264", argv[indexOf(argv, "-c:v")+1])
	require.NotEqual(t, path, argv[len(argv)-1], "ffmpeg writes a temporary file")

	var want []byte
	for _, f := range []*image.NRGBA{a, b} {
		for y := 0; y < 4; y++ {
			for x := 0; x < 6; x++ {
				c := f.NRGBAAt(min(x, 4), min(y, 2)) // last column and row repeated
				want = append(want, c.R, c.G, c.B)
			}
		}
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, data)
}

func TestWriteMP4ReportsFFmpegFailure(t *testing.T) {
	fakeFFmpeg(t, `echo "Unknown encoder 'libx264'" >&2; exit 1`)
	dir := t.TempDir()
	path := filepath.Join(dir, "clip.mp4")
	err := WriteMP4(path, []image.Image{flat(8, 8, color.NRGBA{1, 2, 3, 255})}, 7)
	require.ErrorContains(t, err, "writing MP4 "+path+": ffmpeg failed (exit status 1): Unknown encoder 'libx264'")
	require.Empty(t, dirNames(t, dir), "no partial file")
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
