package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// Encoders turn clips into what training reads: the VAE and the CLIP
// image encoder with its preprocessing, on one device.
type Encoders struct {
	VAE          *vae.Model
	ImageEncoder *clip.Model
	Preprocessor *clip.Preprocessor
}

// CacheOptions are the conditioning values stored with each clip.
type CacheOptions struct {
	NoiseAugStrength float64 // noise added to the conditioning frame (0.02)
	MotionBucketID   float64 // (127)
	FPS              float64 // the clips' frame rate; the UNet sees FPS − 1 (7)
	ShardSize        int     // clips per shard file (64)
	Seed             uint64  // seeds the conditioning noise
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.NoiseAugStrength == 0 {
		o.NoiseAugStrength = 0.02
	}
	if o.MotionBucketID == 0 {
		o.MotionBucketID = 127
	}
	if o.FPS == 0 {
		o.FPS = 7
	}
	if o.ShardSize == 0 {
		o.ShardSize = 64
	}
	return o
}

// Entry is one cached clip, as engine tensors owned by the scope that read it.
type Entry struct {
	Path         string
	Latents      *torch.Tensor // [F, 4, h, w]: the clip's VAE latents (mode), times the scaling factor
	ImageLatents *torch.Tensor // [4, h, w]: the noise-augmented first frame's latent (mode, unscaled)
	ImageEmbeds  *torch.Tensor // [1, D]: CLIP image_embeds of the first frame
	AddedTimeIDs *torch.Tensor // [3]: fps − 1, motion bucket, noise augmentation strength
}

// Encode computes a clip's Entry (float32, on the encoders' device).
func (e Encoders) Encode(s *torch.Scope, c *Clip, g *torch.Generator, o CacheOptions) (ent Entry, err error) {
	defer torch.Recover(&err)
	o = o.withDefaults()
	dev := e.VAE.Device()
	k := s.Child()
	defer k.Close()
	raw, err := torch.FromUint8(k, c.Pixels, []int64{int64(c.Frames), int64(c.Height), int64(c.Width), 3}, torch.Float32, dev)
	if err != nil {
		return ent, fmt.Errorf("data: %s: %w", c.Path, err)
	}
	frames := k.MulScalar(k.Permute(raw, 0, 3, 1, 2), 1.0/255) // [F, 3, H, W] in [0, 1]
	signed := k.AddScalar(k.MulScalar(frames, 2), -1)
	mean, _ := e.VAE.EncodeApply(k, k.Cast(signed, e.VAE.DType()))
	ent.Latents = k.Keep(k.MulScalar(k.Cast(mean, torch.Float32), e.VAE.Config.ScalingFactor))

	first := k.Slice(frames, 0, 0, 1) // [1, 3, H, W]
	noise, err := g.Randn(k, first.Shape(), torch.Float32, dev)
	if err != nil {
		return ent, err
	}
	aug := k.Add(k.Slice(signed, 0, 0, 1), k.MulScalar(noise, o.NoiseAugStrength))
	z, _ := e.VAE.EncodeApply(k, k.Cast(aug, e.VAE.DType()))
	ent.ImageLatents = k.Keep(k.Reshape(k.Cast(z, torch.Float32), z.Size(1), z.Size(2), z.Size(3)))
	emb := e.ImageEncoder.Apply(k, k.Cast(e.Preprocessor.Apply(k, first), e.ImageEncoder.DType()))
	ent.ImageEmbeds = k.Keep(k.Cast(emb, torch.Float32))
	ids, err := torch.FromFloat32(k, []float32{float32(o.FPS - 1), float32(o.MotionBucketID), float32(o.NoiseAugStrength)}, []int64{3}, torch.Float32, dev)
	if err != nil {
		return ent, err
	}
	ent.AddedTimeIDs = k.Keep(ids)
	ent.Path = c.Path
	return ent, nil
}

const cacheMeta = "osv_cache_paths"

// BuildCache encodes every clip from clips into shard files in dir
// (shard_00000.safetensors, …; each holds ShardSize clips as <i>.latents,
// <i>.image_latents, <i>.image_embeds, <i>.added_time_ids, with their
// source paths in the metadata) and returns how many it wrote.
func BuildCache(dir string, clips <-chan *Clip, e Encoders, o CacheOptions) (int, error) {
	o = o.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("data: %w", err)
	}
	g, err := torch.NewGenerator(o.Seed)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	s := torch.NewScope() // replaced by a fresh one after each shard
	defer func() { s.Close() }()
	total, shard := 0, 0
	pending := map[string]*torch.Tensor{}
	var paths []string
	flush := func() error {
		if len(paths) == 0 {
			return nil
		}
		meta, _ := json.Marshal(paths)
		name := filepath.Join(dir, fmt.Sprintf("shard_%05d.safetensors", shard))
		if err := torch.SaveFile(name, pending, map[string]string{"format": "pt", cacheMeta: string(meta)}); err != nil {
			return fmt.Errorf("data: %w", err)
		}
		shard++
		s.Close()
		s = torch.NewScope()
		pending, paths = map[string]*torch.Tensor{}, nil
		return nil
	}
	for c := range clips {
		ent, err := e.Encode(s, c, g, o)
		if err != nil {
			return total, err
		}
		i := len(paths)
		pending[fmt.Sprintf("%d.latents", i)] = ent.Latents
		pending[fmt.Sprintf("%d.image_latents", i)] = ent.ImageLatents
		pending[fmt.Sprintf("%d.image_embeds", i)] = ent.ImageEmbeds
		pending[fmt.Sprintf("%d.added_time_ids", i)] = ent.AddedTimeIDs
		paths = append(paths, c.Path)
		total++
		if len(paths) == o.ShardSize {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	return total, flush()
}

// Cache is a latent cache on disk, opened for reading.
type Cache struct {
	files []*safetensors.File
	index []cacheRef
}

type cacheRef struct {
	file int
	i    int
	path string
}

// OpenCache opens every shard of dir, in name order.
func OpenCache(dir string) (*Cache, error) {
	names, err := filepath.Glob(filepath.Join(dir, "shard_*.safetensors"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("data: %s holds no cache shards (shard_*.safetensors)", dir)
	}
	c := &Cache{}
	for fi, name := range names {
		f, err := safetensors.Open(name)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("data: %w", err)
		}
		c.files = append(c.files, f)
		var paths []string
		if err := json.Unmarshal([]byte(f.Header.Metadata[cacheMeta]), &paths); err != nil {
			c.Close()
			return nil, fmt.Errorf("data: %s: no valid %q metadata (not a cache shard): %v", name, cacheMeta, err)
		}
		for i, p := range paths {
			for _, k := range []string{"latents", "image_latents", "image_embeds", "added_time_ids"} {
				if _, ok := f.Info(fmt.Sprintf("%d.%s", i, k)); !ok {
					c.Close()
					return nil, fmt.Errorf("data: %s: clip %d (%s) has no %s", name, i, p, k)
				}
			}
			c.index = append(c.index, cacheRef{fi, i, p})
		}
	}
	return c, nil
}

// Len is the number of cached clips.
func (c *Cache) Len() int { return len(c.index) }

// Entry reads clip i onto dev, owned by s.
func (c *Cache) Entry(s *torch.Scope, i int, dev torch.Device) (Entry, error) {
	if i < 0 || i >= len(c.index) {
		return Entry{}, fmt.Errorf("data: cache entry %d of %d", i, len(c.index))
	}
	r := c.index[i]
	f := c.files[r.file]
	read := func(k string) (*torch.Tensor, error) {
		return torch.ReadTensor(s, f, fmt.Sprintf("%d.%s", r.i, k), torch.Float32, dev)
	}
	var e Entry
	var err error
	e.Path = r.path
	if e.Latents, err = read("latents"); err != nil {
		return e, err
	}
	if e.ImageLatents, err = read("image_latents"); err != nil {
		return e, err
	}
	if e.ImageEmbeds, err = read("image_embeds"); err != nil {
		return e, err
	}
	e.AddedTimeIDs, err = read("added_time_ids")
	return e, err
}

// Close closes the shard files.
func (c *Cache) Close() error {
	var errs []string
	for _, f := range c.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	c.files = nil
	if len(errs) > 0 {
		return fmt.Errorf("data: %s", strings.Join(errs, "; "))
	}
	return nil
}
