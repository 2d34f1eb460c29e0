package osv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv/media"
	"github.com/onestepvideo/osv-go/torch"
)

type pipelineCase struct {
	Height, Width, NumFrames int
	NumInferenceSteps        int     `json:"num_inference_steps"`
	MinGuidanceScale         float64 `json:"min_guidance_scale"`
	MaxGuidanceScale         float64 `json:"max_guidance_scale"`
	FPS                      int     `json:"fps"`
	MotionBucketID           int     `json:"motion_bucket_id"`
	NoiseAugStrength         float64 `json:"noise_aug_strength"`
	DecodeChunkSize          int     `json:"decode_chunk_size"`
}

func (c pipelineCase) options() GenerateOptions {
	aug := c.NoiseAugStrength
	return GenerateOptions{
		Width: c.Width, Height: c.Height, NumFrames: c.NumFrames, NumInferenceSteps: c.NumInferenceSteps,
		MinGuidanceScale: c.MinGuidanceScale, MaxGuidanceScale: c.MaxGuidanceScale, FPS: c.FPS,
		MotionBucketID: c.MotionBucketID, NoiseAugStrength: &aug, DecodeChunkSize: c.DecodeChunkSize,
	}
}

func readCase(t *testing.T) pipelineCase {
	t.Helper()
	var c pipelineCase
	require.NoError(t, fixture.JSON("pipeline", &c))
	c.NumFrames = jsonInt(t, "num_frames")
	return c
}

func jsonInt(t *testing.T, key string) int {
	t.Helper()
	var m map[string]any
	require.NoError(t, fixture.JSON("pipeline", &m))
	v, ok := m[key].(float64)
	require.True(t, ok, "pipeline.json has no %s", key)
	return int(v)
}

func relErr(t *testing.T, got, want *torch.Tensor) float64 {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape())
	g, err := got.Float32s()
	require.NoError(t, err)
	w, err := want.Float32s()
	require.NoError(t, err)
	r, err := fixture.RelL2(g, w)
	require.NoError(t, err)
	return r
}

func gt(t *testing.T, x *torch.Tensor) gotorch.Tensor {
	t.Helper()
	g, err := torch.ToGotorch(x)
	require.NoError(t, err)
	t.Cleanup(func() { Release(g) })
	return g
}

func TestParityPipeline(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	c := readCase(t)
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer p.Close()
	s := torch.NewScope()
	defer s.Close()
	ref, err := torch.LoadFile(s, fixture.Path("io", "pipeline.safetensors"), testDevice)
	require.NoError(t, err)

	// The image: the fixture's bytes, and the PNG decoded by media.
	u8 := ref["image_u8"] // [H, W, 3]
	img := s.MulScalar(s.Permute(s.Reshape(s.Cast(u8, torch.Float32), 1, u8.Size(0), u8.Size(1), 3), 0, 3, 1, 2), 1.0/255)
	png, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	data, w, h := media.ToCHW(png)
	fromPNG, err := torch.FromFloat32(s, data, []int64{1, 3, int64(h), int64(w)}, torch.Float32, testDevice)
	require.NoError(t, err)
	// Same bytes; x/255 and x·(1/255) differ in the last bit.
	require.LessOrEqual(t, relErr(t, fromPNG, img), 1e-7, "PNG decode against image_u8")

	var ferr error
	func() {
		defer torch.Recover(&ferr)
		e := relErr(t, p.EncodeImage(s, img), ref["image_embeddings"])
		t.Logf("image_embeddings: relative L2 error %.3g", e)
		require.LessOrEqual(t, e, 1e-3)

		o := c.options()
		o.Latents = gt(t, ref["latents"])
		o.CondNoise = gt(t, ref["cond_noise"])
		steps := 0
		o.onStep = func(i int, x *torch.Tensor) {
			want, ok := ref[fmt.Sprintf("latents_after_step.%d", i)]
			require.True(t, ok, "no reference for step %d", i)
			e := relErr(t, x, want)
			t.Logf("latents after step %d: relative L2 error %.3g", i, e)
			require.LessOrEqual(t, e, 1e-3)
			steps++
		}
		frames := p.Apply(context.Background(), s, img, o)
		require.Equal(t, c.NumInferenceSteps, steps)
		e = relErr(t, frames, ref["frames"])
		t.Logf("frames %v on %s: relative L2 error %.3g", frames.Shape(), testDevice, e)
		require.LessOrEqual(t, e, 1e-3)
	}()
	require.NoError(t, ferr)
}

func TestGenerateThroughTheAPI(t *testing.T) {
	c := readCase(t)
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer p.Close()
	img, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	start := torch.Live()

	o := c.options()
	o.NumInferenceSteps = 2
	o.Seed = 3
	var seen []int
	o.Progress = func(step, total int) { seen = append(seen, step*10+total) }
	v, err := p.Generate(context.Background(), img, o)
	require.NoError(t, err)
	require.Len(t, v.Frames, c.NumFrames)
	require.Equal(t, c.Width, v.Frames[0].Bounds().Dx())
	require.Equal(t, []int64{1, int64(c.NumFrames), 3, int64(c.Height), int64(c.Width)}, v.Tensor.Shape())
	require.Equal(t, []int{12, 22}, seen)
	// The same seed gives the same video; another seed another one.
	again, err := p.Generate(context.Background(), img, o)
	require.NoError(t, err)
	o.Seed = 4
	other, err := p.Generate(context.Background(), img, o)
	require.NoError(t, err)
	s := torch.NewScope()
	a, _ := torch.FromGotorch(s, v.Tensor)
	b, _ := torch.FromGotorch(s, again.Tensor)
	d, _ := torch.FromGotorch(s, other.Tensor)
	require.Equal(t, 0.0, relErr(t, b, a))
	require.Greater(t, relErr(t, d, a), 1e-3)
	s.Close()
	Release(v.Tensor, again.Tensor, other.Tensor)

	// A cancelled context stops between steps.
	ctx, cancel := context.WithCancel(context.Background())
	o.Progress = func(step, total int) { cancel() }
	_, err = p.Generate(ctx, img, o)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)

	// Bad arguments are refused before anything runs.
	for _, bad := range []struct {
		edit func(*GenerateOptions)
		want string
	}{
		{func(o *GenerateOptions) { o.Width = c.Width + 8 }, "must be positive multiples"},
		{func(o *GenerateOptions) { o.NumFrames = -1 }, "frames -1"},
		{func(o *GenerateOptions) { o.NumInferenceSteps = -2 }, "steps -2"},
		{func(o *GenerateOptions) { n := -0.5; o.NoiseAugStrength = &n }, "noise augmentation"},
	} {
		o := c.options()
		bad.edit(&o)
		_, err := p.Generate(context.Background(), img, o)
		require.ErrorContains(t, err, bad.want)
	}
	_, err = p.Generate(context.Background(), nil, c.options())
	require.ErrorContains(t, err, "nil image")
	require.Equal(t, start, torch.Live(), "native tensors leaked by Generate")
}

func TestLoadPipelineRejectsBadFolders(t *testing.T) {
	start := torch.Live()
	_, err := LoadPipeline(filepath.Join(t.TempDir(), "none"))
	require.ErrorContains(t, err, "model_index.json")

	// A copy of the pipeline without its VAE, and one with truncated UNet weights.
	copyDir := func(skip string, truncate string) string {
		dst := t.TempDir()
		src := fixture.Path("pipeline")
		require.NoError(t, filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
			require.NoError(t, err)
			rel, _ := filepath.Rel(src, path)
			if skip != "" && (rel == skip || filepath.Dir(rel) == skip) {
				return nil
			}
			if info.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			if rel == truncate {
				b = b[:len(b)/2]
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}))
		return dst
	}
	_, err = LoadPipeline(copyDir("vae", ""))
	require.ErrorContains(t, err, "no vae/ component")
	_, err = LoadPipeline(copyDir("", filepath.Join("unet", "diffusion_pytorch_model.safetensors")))
	require.ErrorContains(t, err, "diffusion_pytorch_model.safetensors")
	_, err = LoadPipeline(fixture.Path("pipeline"), WithDType("int64"))
	require.ErrorContains(t, err, "int64")
	require.Equal(t, start, torch.Live())
}
