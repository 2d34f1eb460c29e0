package data

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/torch"
)

func encoders(t *testing.T) Encoders {
	t.Helper()
	v, err := vae.Load(fixture.Path("pipeline", "vae"))
	require.NoError(t, err)
	t.Cleanup(func() { v.Close() })
	enc, err := clip.Load(fixture.Path("pipeline", "image_encoder"))
	require.NoError(t, err)
	t.Cleanup(func() { enc.Close() })
	pre, err := clip.LoadPreprocessor(fixture.Path("pipeline", "feature_extractor"))
	require.NoError(t, err)
	return Encoders{VAE: v, ImageEncoder: enc, Preprocessor: pre}
}

// signedCHW is frames [F, 3, H, W] in [−1, 1] from a clip's bytes
// (HWC per frame), converted here in Go.
func signedCHW(t *testing.T, s *torch.Scope, c *Clip, frames int) *torch.Tensor {
	t.Helper()
	w, h := c.Width, c.Height
	v := make([]float32, frames*3*h*w)
	for f := range frames {
		px := c.Frame(f)
		for y := range h {
			for x := range w {
				for ch := range 3 {
					v[((f*3+ch)*h+y)*w+x] = float32(px[(y*w+x)*3+ch])/255*2 - 1
				}
			}
		}
	}
	x, err := torch.FromFloat32(s, v, []int64{int64(frames), 3, int64(h), int64(w)}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	return x
}

// Every cache entry holds what its clip gives when computed directly: the
// VAE's mean of the frames in [−1, 1] times the scaling factor; the mean
// of the first frame plus the conditioning noise (the Seed generator's
// draws, one per clip in order, times the strength), unscaled; CLIP's
// embedding of the first frame; and fps − 1, the motion bucket and the
// strength.
func TestLatentCache(t *testing.T) {
	if !haveFFmpeg(t) {
		return
	}
	e := encoders(t)
	dir := t.TempDir()
	var paths []string
	for i := range 5 {
		paths = append(paths, video(t, dir, fmt.Sprintf("v%d.mp4", i), 1.5))
	}
	start := torch.Live()
	o := Options{Frames: 3, FPS: 5, Width: 32, Height: 24}
	clips, stats, wait := Stream(context.Background(), paths, StreamOptions{Options: o, Workers: 2})
	cacheDir := t.TempDir()
	const seed, strength, bucket, fps = 3, 0.05, 90, 5
	n, err := BuildCache(cacheDir, clips, e, CacheOptions{ShardSize: 2, Seed: seed, NoiseAugStrength: strength, MotionBucketID: bucket, FPS: fps})
	require.NoError(t, err)
	require.NoError(t, wait())
	require.Equal(t, 5, n)
	require.Equal(t, int64(5), stats.Decoded.Load())
	require.Equal(t, start, torch.Live(), "building the cache leaks nothing")

	c, err := OpenCache(cacheDir)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, 5, c.Len())
	s := torch.NewScope()
	defer s.Close()
	g, err := torch.NewGenerator(seed)
	require.NoError(t, err)
	defer g.Close()
	near := func(what string, got, want *torch.Tensor) {
		t.Helper()
		require.Equal(t, want.Shape(), got.Shape(), what)
		a, err := got.Float32s()
		require.NoError(t, err)
		b, err := want.Float32s()
		require.NoError(t, err)
		rel, err := fixture.RelL2(a, b)
		require.NoError(t, err)
		require.LessOrEqual(t, rel, 1e-5, what) // float32 rounding: measured up to 1.3e-6
	}
	for i, path := range paths {
		ent, err := c.Entry(s, i, torch.CPU)
		require.NoError(t, err)
		require.Equal(t, path, ent.Path)
		cl, err := Decode(context.Background(), path, o)
		require.NoError(t, err)
		noise, err := g.Randn(s, []int64{1, 3, int64(o.Height), int64(o.Width)}, torch.Float32, torch.CPU)
		require.NoError(t, err)
		var latents, imageLatents, embeds *torch.Tensor
		func() {
			defer torch.Recover(&err)
			x := signedCHW(t, s, cl, o.Frames)
			mean, _ := e.VAE.EncodeApply(s, x)
			latents = s.MulScalar(mean, e.VAE.Config.ScalingFactor)
			first := s.Slice(x, 0, 0, 1)
			z, _ := e.VAE.EncodeApply(s, s.Add(first, s.MulScalar(noise, strength)))
			imageLatents = s.Reshape(z, z.Size(1), z.Size(2), z.Size(3))
			embeds = e.ImageEncoder.Apply(s, e.Preprocessor.Apply(s, s.MulScalar(s.AddScalar(first, 1), 0.5)))
		}()
		require.NoError(t, err)
		near(fmt.Sprintf("entry %d latents", i), ent.Latents, latents)
		near(fmt.Sprintf("entry %d image latents", i), ent.ImageLatents, imageLatents)
		near(fmt.Sprintf("entry %d image embeds", i), ent.ImageEmbeds, embeds)
		ids, err := ent.AddedTimeIDs.Float32s()
		require.NoError(t, err)
		require.Equal(t, []float32{fps - 1, bucket, strength}, ids)
	}
	ent, err := c.Entry(s, 0, torch.CPU)
	require.NoError(t, err)
	h, w := int64(o.Height)/e.VAE.Config.Downscale(), int64(o.Width)/e.VAE.Config.Downscale()
	require.Equal(t, []int64{int64(o.Frames), e.VAE.Config.LatentChannels, h, w}, ent.Latents.Shape())
	require.Equal(t, []int64{1, e.ImageEncoder.Config.ProjectionDim}, ent.ImageEmbeds.Shape())

	_, err = c.Entry(s, 5, torch.CPU)
	require.ErrorContains(t, err, "entry 5 of 5")
	_, err = OpenCache(t.TempDir())
	require.ErrorContains(t, err, "no cache shards")
}
