package unet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Block type names, as config.json spells them.
const (
	CrossAttnDown = "CrossAttnDownBlockSpatioTemporal"
	Down          = "DownBlockSpatioTemporal"
	CrossAttnUp   = "CrossAttnUpBlockSpatioTemporal"
	Up            = "UpBlockSpatioTemporal"
)

// Config is UNetSpatioTemporalConditionModel's config.json.
type Config struct {
	SampleSize                        int64     `json:"sample_size"`
	InChannels                        int64     `json:"in_channels"`
	OutChannels                       int64     `json:"out_channels"`
	DownBlockTypes                    []string  `json:"down_block_types"`
	UpBlockTypes                      []string  `json:"up_block_types"`
	BlockOutChannels                  []int64   `json:"block_out_channels"`
	AdditionTimeEmbedDim              int64     `json:"addition_time_embed_dim"`
	ProjectionClassEmbeddingsInputDim int64     `json:"projection_class_embeddings_input_dim"`
	LayersPerBlock                    IntOrList `json:"layers_per_block"`
	CrossAttentionDim                 IntOrList `json:"cross_attention_dim"`
	TransformerLayersPerBlock         IntOrList `json:"transformer_layers_per_block"`
	NumAttentionHeads                 IntOrList `json:"num_attention_heads"`
	NumFrames                         int64     `json:"num_frames"`
}

// DefaultConfig is SVD's UNet (stable-video-diffusion-img2vid-xt).
func DefaultConfig() Config {
	return Config{
		SampleSize:                        96,
		InChannels:                        8,
		OutChannels:                       4,
		DownBlockTypes:                    []string{CrossAttnDown, CrossAttnDown, CrossAttnDown, Down},
		UpBlockTypes:                      []string{Up, CrossAttnUp, CrossAttnUp, CrossAttnUp},
		BlockOutChannels:                  []int64{320, 640, 1280, 1280},
		AdditionTimeEmbedDim:              256,
		ProjectionClassEmbeddingsInputDim: 768,
		LayersPerBlock:                    IntOrList{2},
		CrossAttentionDim:                 IntOrList{1024},
		TransformerLayersPerBlock:         IntOrList{1},
		NumAttentionHeads:                 IntOrList{5, 10, 20, 20},
		NumFrames:                         25,
	}
}

// IntOrList is a config value given either as one integer for every block
// or as a list with one per block.
type IntOrList []int64

// UnmarshalJSON reads an integer or a list of integers.
func (v *IntOrList) UnmarshalJSON(b []byte) error {
	var one int64
	if err := json.Unmarshal(b, &one); err == nil {
		*v = IntOrList{one}
		return nil
	}
	var list []int64
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("want an integer or a list of integers, got %s", b)
	}
	*v = list
	return nil
}

// MarshalJSON writes a single value as an integer.
func (v IntOrList) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	return json.Marshal([]int64(v))
}

// At is the value for block i.
func (v IntOrList) At(i int) int64 {
	if len(v) == 1 {
		return v[0]
	}
	return v[i]
}

// NumTimeIDs is the number of added time ids each sample takes (3 for SVD:
// fps − 1, motion bucket, noise augmentation strength).
func (c Config) NumTimeIDs() int64 {
	return c.ProjectionClassEmbeddingsInputDim / c.AdditionTimeEmbedDim
}

// groups is the GroupNorm group count of every norm in the model.
const groups = 32

// Validate checks the config before any tensor is made.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("unet config: block_out_channels is empty")
	case len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n:
		return fmt.Errorf("unet config: %d down and %d up block types for %d block_out_channels",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	case c.InChannels <= 0 || c.OutChannels <= 0:
		return fmt.Errorf("unet config: in_channels %d and out_channels %d must be positive", c.InChannels, c.OutChannels)
	case c.AdditionTimeEmbedDim <= 0 || c.ProjectionClassEmbeddingsInputDim <= 0:
		return fmt.Errorf("unet config: addition_time_embed_dim and projection_class_embeddings_input_dim must be positive")
	}
	for name, v := range map[string]IntOrList{
		"layers_per_block": c.LayersPerBlock, "cross_attention_dim": c.CrossAttentionDim,
		"transformer_layers_per_block": c.TransformerLayersPerBlock, "num_attention_heads": c.NumAttentionHeads,
	} {
		if len(v) != 1 && len(v) != n {
			return fmt.Errorf("unet config: %s has %d entries for %d blocks", name, len(v), n)
		}
		if slices.ContainsFunc(v, func(x int64) bool { return x <= 0 }) {
			return fmt.Errorf("unet config: %s must be positive, got %v", name, []int64(v))
		}
	}
	for i, t := range c.DownBlockTypes {
		if t != CrossAttnDown && t != Down {
			return fmt.Errorf("unet config: down_block_types[%d] = %q is not supported (want %s or %s)", i, t, CrossAttnDown, Down)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != CrossAttnUp && t != Up {
			return fmt.Errorf("unet config: up_block_types[%d] = %q is not supported (want %s or %s)", i, t, CrossAttnUp, Up)
		}
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%groups != 0 {
			return fmt.Errorf("unet config: block_out_channels[%d] = %d must be a positive multiple of %d (GroupNorm groups)", i, ch, groups)
		}
		if h := c.NumAttentionHeads.At(i); ch%h != 0 {
			return fmt.Errorf("unet config: block_out_channels[%d] = %d is not divisible by num_attention_heads %d", i, ch, h)
		}
	}
	if c.ProjectionClassEmbeddingsInputDim%c.AdditionTimeEmbedDim != 0 {
		return fmt.Errorf("unet config: projection_class_embeddings_input_dim %d is not a multiple of addition_time_embed_dim %d",
			c.ProjectionClassEmbeddingsInputDim, c.AdditionTimeEmbedDim)
	}
	return nil
}

// ReadConfig reads and validates dir/config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("unet: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("unet: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
