package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/media"
)

// generate is what the library makes of imagePath with the options img2vid
// passes for its flags (-steps 2 -seed 1, the rest left at their defaults
// but decode and fit).
func generate(t *testing.T, imagePath string, c pipelineCase, chunk int, fit media.FitMode) []image.Image {
	t.Helper()
	img, err := media.LoadImage(imagePath)
	require.NoError(t, err)
	p, err := osv.LoadPipeline(fixture.Path("pipeline"))
	require.NoError(t, err)
	defer p.Close()
	aug := 0.02
	v, err := p.Generate(context.Background(), img, osv.GenerateOptions{
		Sampler: osv.EulerSampler{}, Width: c.Width, Height: c.Height, NumFrames: c.NumFrames, NumInferenceSteps: 2,
		FPS: 7, MotionBucketID: 127, NoiseAugStrength: &aug, DecodeChunkSize: chunk, Seed: 1, Fit: fit,
	})
	require.NoError(t, err)
	osv.Release(v.Tensor)
	return v.Frames
}

// readPNGs reads a folder of PNG frames written by img2vid, in order.
func readPNGs(t *testing.T, dir string, c pipelineCase) []image.Image {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.png"))
	require.NoError(t, err)
	require.Len(t, names, c.NumFrames, "one PNG a frame")
	var out []image.Image
	for i := range c.NumFrames {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("frame_%04d.png", i)))
		require.NoError(t, err)
		img, err := png.Decode(f)
		f.Close()
		require.NoError(t, err)
		require.Equal(t, image.Rect(0, 0, c.Width, c.Height), img.Bounds())
		out = append(out, img)
	}
	return out
}

// differing counts the pixels of two frame lists that differ.
func differing(t *testing.T, a, b []image.Image) int {
	t.Helper()
	require.Len(t, b, len(a))
	n := 0
	for i := range a {
		r := a[i].Bounds()
		require.Equal(t, r, b[i].Bounds())
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				p := color.NRGBAModel.Convert(a[i].At(x, y)).(color.NRGBA)
				q := color.NRGBAModel.Convert(b[i].At(x, y)).(color.NRGBA)
				if p != q {
					n++
				}
			}
		}
	}
	return n
}

// cli runs img2vid on imagePath with the case's size, two steps and seed
// 1, writing out, and returns its log.
func cli(t *testing.T, imagePath, out string, c pipelineCase, extra ...string) string {
	t.Helper()
	var log bytes.Buffer
	args := append([]string{"-model", fixture.Path("pipeline"), "-image", imagePath, "-out", out,
		"-frames", strconv.Itoa(c.NumFrames), "-steps", "2", "-seed", "1"}, c.size()...)
	require.NoError(t, run(append(args, extra...), &log), log.String())
	require.Contains(t, log.String(), "wrote "+out)
	return log.String()
}

// A path without an extension becomes a folder of PNG frames holding
// exactly the library's frames; -decode-chunk 1 decodes frame by frame
// (the library's DecodeChunkSize 1, not the same video, the decoder mixes
// frames); -fit stretch brings an image of another shape to the size
// without cropping (the library's FitStretch, not the crop).
func TestImg2VidPNGFramesDecodeChunkAndFit(t *testing.T) {
	c := readCase(t)
	dir := t.TempDir()
	img := fixture.Path("io", "pipeline_input.png")

	frames := filepath.Join(dir, "frames")
	cli(t, img, frames, c)
	whole := readPNGs(t, frames, c)
	require.Zero(t, differing(t, whole, generate(t, img, c, 0, media.FitCrop)), "the PNG frames are the library's")

	chunked := filepath.Join(dir, "chunked")
	cli(t, img, chunked, c, "-decode-chunk", "1")
	one := readPNGs(t, chunked, c)
	require.Zero(t, differing(t, one, generate(t, img, c, 1, media.FitCrop)), "-decode-chunk 1 is DecodeChunkSize 1")
	if c.NumFrames > 1 {
		require.Positive(t, differing(t, one, whole), "decoding frame by frame changes the video")
	}

	// An image half as wide as the video: cropping and stretching differ.
	src := image.NewNRGBA(image.Rect(0, 0, c.Width/2, c.Height))
	for y := range c.Height {
		for x := range c.Width / 2 {
			src.SetNRGBA(x, y, color.NRGBA{uint8(4 * x), uint8(3 * y), uint8(x * y), 255})
		}
	}
	narrow := filepath.Join(dir, "narrow.png")
	f, err := os.Create(narrow)
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, src))
	require.NoError(t, f.Close())
	stretched, cropped := filepath.Join(dir, "stretched"), filepath.Join(dir, "cropped")
	cli(t, narrow, stretched, c, "-fit", "stretch")
	cli(t, narrow, cropped, c)
	st, cr := readPNGs(t, stretched, c), readPNGs(t, cropped, c)
	require.Zero(t, differing(t, st, generate(t, narrow, c, 0, media.FitStretch)), "-fit stretch is FitStretch")
	require.Zero(t, differing(t, cr, generate(t, narrow, c, 0, media.FitCrop)), "the default is FitCrop")
	require.Positive(t, differing(t, st, cr), "stretching and cropping give the same video")

	var log bytes.Buffer
	err = run(append([]string{"-model", fixture.Path("pipeline"), "-image", img, "-out", filepath.Join(dir, "x"), "-fit", "pad"}, c.size()...), &log)
	require.ErrorContains(t, err, `"pad"`)
}

// A .mp4 path is an H.264 video through ffmpeg, of the case's size and
// frame count.
func TestImg2VidWritesAnMP4(t *testing.T) {
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH; make test installs ffmpeg and runs this test", tool)
		}
	}
	c := readCase(t)
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cli(t, fixture.Path("io", "pipeline_input.png"), out, c)
	probe, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", out).CombinedOutput()
	require.NoError(t, err, string(probe))
	require.Equal(t, fmt.Sprintf("h264,%d,%d,%d", c.Width, c.Height, c.NumFrames), strings.TrimSpace(string(probe)))
}
