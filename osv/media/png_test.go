package media

import (
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWritePNGsReadsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "frames") // created, parents too
	var frames []image.Image
	for i := range 3 {
		frames = append(frames, randomNRGBA(7, 5, uint64(10+i)))
	}
	require.NoError(t, WritePNGs(dir, frames))
	require.Equal(t, []string{"frame_0000.png", "frame_0001.png", "frame_0002.png"}, dirNames(t, dir))
	for i, f := range frames {
		img, err := LoadImage(filepath.Join(dir, FrameName(i)))
		require.NoError(t, err)
		requireSamePixels(t, f, img)
	}
	st, err := os.Stat(filepath.Join(dir, FrameName(0)))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
}

func TestWritePNGsRejectsBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "frames")
	err := WritePNGs(dir, nil)
	require.ErrorContains(t, err, "writing PNG frames to "+dir+": no frames to write")
	err = WritePNGs(dir, []image.Image{flat(3, 3, red), flat(2, 3, red)})
	require.ErrorContains(t, err, "frame 1 is 2×3 but frame 0 is 3×3")
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing created for bad input")

	file := writeFile(t, "taken", []byte("x"))
	err = WritePNGs(file, []image.Image{flat(3, 3, red)})
	require.ErrorContains(t, err, file)
}
