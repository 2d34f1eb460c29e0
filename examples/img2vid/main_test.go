package main

import (
	"bytes"
	"image/gif"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
)

func TestImg2VidWritesAGIF(t *testing.T) {
	var cfg struct{ Height, Width, NumFrames int }
	require.NoError(t, fixture.JSON("pipeline", &cfg))
	out := filepath.Join(t.TempDir(), "clip.gif")
	var log bytes.Buffer
	err := run([]string{
		"-model", fixture.Path("pipeline"), "-image", fixture.Path("io", "pipeline_input.png"), "-out", out,
		"-width", "128", "-height", "64", "-frames", "3", "-steps", "2", "-seed", "1",
	}, &log)
	require.NoError(t, err, log.String())
	require.Contains(t, log.String(), "step 2/2")
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	g, err := gif.DecodeAll(f)
	require.NoError(t, err)
	require.Len(t, g.Image, 3)
	require.Equal(t, 128, g.Config.Width)
}

func TestImg2VidRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.png")
	require.NoError(t, os.WriteFile(text, []byte("not an image"), 0o644))
	incomplete := filepath.Join(dir, "incomplete")
	require.NoError(t, os.MkdirAll(incomplete, 0o755))
	index, err := os.ReadFile(fixture.Path("pipeline", "model_index.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(incomplete, "model_index.json"), index, 0o644))

	model, img, out := fixture.Path("pipeline"), fixture.Path("io", "pipeline_input.png"), filepath.Join(dir, "o.gif")
	base := func(extra ...string) []string {
		return append([]string{"-model", model, "-image", img, "-out", out, "-width", "128", "-height", "64", "-steps", "1"}, extra...)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-image", img, "-out", out}, "required"},
		{[]string{"-model", model, "-image", text, "-out", out}, "notes.png"},
		{[]string{"-model", model, "-image", filepath.Join(dir, "missing.png"), "-out", out}, "missing.png"},
		{[]string{"-model", filepath.Join(dir, "nomodel"), "-image", img, "-out", out}, "model_index.json"},
		{[]string{"-model", incomplete, "-image", img, "-out", out}, "no unet/ component"},
		{base("-width", "100"), "multiples of 8"},
		{base("-width", "136"), "multiples of"},
		{base("-frames", "0"), "-frames 0"},
		{base("-steps", "0"), "-steps 0"},
		{base("-fit", "squash"), "squash"},
		{append(base(), "extra"), "unexpected argument"},
	} {
		var log bytes.Buffer
		err := run(c.args, &log)
		require.Error(t, err, strings.Join(c.args, " "))
		require.Contains(t, err.Error(), c.want)
		require.NotContains(t, oneLine(err), "\n")
	}
}
