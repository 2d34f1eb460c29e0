package vae

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// DownEncoder is the only encoder block type the temporal VAE uses, as
// config.json spells it.
const DownEncoder = "DownEncoderBlock2D"

// Config is AutoencoderKLTemporalDecoder's config.json.
type Config struct {
	InChannels       int64    `json:"in_channels"`
	OutChannels      int64    `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	BlockOutChannels []int64  `json:"block_out_channels"`
	LayersPerBlock   int64    `json:"layers_per_block"`
	LatentChannels   int64    `json:"latent_channels"`
	SampleSize       int64    `json:"sample_size"`
	// ScalingFactor multiplies latents before the UNet sees them; Encode
	// and Decode work on unscaled latents and leave it to the caller.
	ScalingFactor float64 `json:"scaling_factor"`
	// ForceUpcast asks callers to run the VAE in float32 when the rest of
	// the pipeline is in float16.
	ForceUpcast bool `json:"force_upcast"`
}

// DefaultConfig is SVD's VAE (stable-video-diffusion-img2vid-xt).
func DefaultConfig() Config {
	return Config{
		InChannels:       3,
		OutChannels:      3,
		DownBlockTypes:   []string{DownEncoder, DownEncoder, DownEncoder, DownEncoder},
		BlockOutChannels: []int64{128, 256, 512, 512},
		LayersPerBlock:   2,
		LatentChannels:   4,
		SampleSize:       768,
		ScalingFactor:    0.18215,
		ForceUpcast:      true,
	}
}

// constructorDefaults are the values diffusers' constructor gives keys
// that a config.json leaves out.
func constructorDefaults() Config {
	return Config{
		InChannels: 3, OutChannels: 3, DownBlockTypes: []string{DownEncoder}, BlockOutChannels: []int64{64},
		LayersPerBlock: 1, LatentChannels: 4, SampleSize: 32, ScalingFactor: 0.18215, ForceUpcast: true,
	}
}

// groups is the GroupNorm group count of every norm in the model.
const groups = 32

// Downscale is the ratio of image size to latent size: 2^(blocks−1).
func (c Config) Downscale() int64 { return int64(1) << (len(c.BlockOutChannels) - 1) }

// Validate checks the config before any tensor is made.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("vae config: block_out_channels is empty")
	case n > 16:
		return fmt.Errorf("vae config: %d blocks, at most 16 are supported", n)
	case len(c.DownBlockTypes) != n:
		return fmt.Errorf("vae config: %d down_block_types for %d block_out_channels", len(c.DownBlockTypes), n)
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0:
		return fmt.Errorf("vae config: in_channels %d, out_channels %d and latent_channels %d must be positive",
			c.InChannels, c.OutChannels, c.LatentChannels)
	case c.LayersPerBlock <= 0:
		return fmt.Errorf("vae config: layers_per_block %d must be positive", c.LayersPerBlock)
	case !(c.ScalingFactor > 0):
		return fmt.Errorf("vae config: scaling_factor %g must be positive", c.ScalingFactor)
	}
	for i, t := range c.DownBlockTypes {
		if t != DownEncoder {
			return fmt.Errorf("vae config: down_block_types[%d] = %q is not supported (want %s)", i, t, DownEncoder)
		}
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%groups != 0 {
			return fmt.Errorf("vae config: block_out_channels[%d] = %d must be a positive multiple of %d (GroupNorm groups)", i, ch, groups)
		}
	}
	return nil
}

// ReadConfig reads and validates dir/config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("vae: %w", err)
	}
	c := constructorDefaults()
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("vae: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
