package media

import (
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteVideoChoosesByExtension(t *testing.T) {
	frames := []image.Image{flat(6, 4, red), flat(6, 4, blue)}
	dir := t.TempDir()

	for _, name := range []string{"a.gif", "B.GIF"} {
		p := filepath.Join(dir, name)
		require.NoError(t, WriteVideo(p, frames, 7))
		require.Len(t, readGIF(t, p).Image, 2)
	}

	fresh := filepath.Join(dir, "new", "frames") // no extension: a folder
	require.NoError(t, WriteVideo(fresh, frames, 7))
	require.Equal(t, []string{"frame_0000.png", "frame_0001.png"}, dirNames(t, fresh))

	existing := filepath.Join(dir, "run.v2") // an existing folder, whatever its name
	require.NoError(t, os.Mkdir(existing, 0o755))
	require.NoError(t, WriteVideo(existing, frames, 7))
	require.Equal(t, []string{"frame_0000.png", "frame_0001.png"}, dirNames(t, existing))

	t.Setenv("PATH", t.TempDir()) // no ffmpeg: .mp4 goes to WriteMP4
	mp4 := filepath.Join(dir, "c.Mp4")
	require.ErrorIs(t, WriteVideo(mp4, frames, 7), ErrNoFFmpeg)
}

func TestWriteVideoRejectsBadPaths(t *testing.T) {
	frames := []image.Image{flat(6, 4, red)}
	dir := t.TempDir()
	avi := filepath.Join(dir, "clip.avi")
	require.EqualError(t, WriteVideo(avi, frames, 7),
		"media: writing video "+avi+`: unknown extension ".avi" (want .gif, .mp4, or a folder for PNG frames)`)

	file := writeFile(t, "plain", []byte("x"))
	require.ErrorContains(t, WriteVideo(file, frames, 7), file+": the path has no extension and is an existing file")

	require.ErrorContains(t, WriteVideo(filepath.Join(dir, "x.gif"), nil, 7), "no frames to write")
	require.Equal(t, []string(nil), dirNames(t, dir))
}
