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
	n, err := BuildCache(cacheDir, clips, e, CacheOptions{ShardSize: 2, Seed: 3})
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
	ent, err := c.Entry(s, 3, torch.CPU)
	require.NoError(t, err)
	require.Equal(t, paths[3], ent.Path)
	require.Equal(t, []int64{3, 4, 3, 4}, ent.Latents.Shape())
	require.Equal(t, []int64{4, 3, 4}, ent.ImageLatents.Shape())
	require.Equal(t, []int64{1, 32}, ent.ImageEmbeds.Shape())
	ids, _ := ent.AddedTimeIDs.Float32s()
	require.Equal(t, []float32{6, 127, 0.02}, ids)

	// The cached latents are the VAE's encoding of the decoded clip.
	clip3, err := Decode(context.Background(), paths[3], o)
	require.NoError(t, err)
	g, _ := torch.NewGenerator(0)
	defer g.Close()
	direct, err := e.Encode(s, clip3, g, CacheOptions{})
	require.NoError(t, err)
	a, _ := ent.Latents.Float32s()
	b, _ := direct.Latents.Float32s()
	require.InDeltaSlice(t, b, a, 1e-6)
	ea, _ := ent.ImageEmbeds.Float32s()
	eb, _ := direct.ImageEmbeds.Float32s()
	require.InDeltaSlice(t, eb, ea, 1e-6)

	_, err = c.Entry(s, 5, torch.CPU)
	require.ErrorContains(t, err, "entry 5 of 5")
	_, err = OpenCache(t.TempDir())
	require.ErrorContains(t, err, "no cache shards")
}
