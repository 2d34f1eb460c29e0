package discriminator

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Activations the backbone's MLP supports, as config.json's hidden_act
// spells them.
const (
	GELU     = "gelu"              // exact GELU (erf), every released DINOv2
	GELUNew  = "gelu_new"          // tanh approximation
	GELUTanh = "gelu_pytorch_tanh" // the same tanh approximation
)

// BackboneConfig is transformers' Dinov2Config (the config.json of a
// Dinov2Model). The released checkpoints differ only in size: ViT-S/14
// (hidden 384, 12 layers, 6 heads), ViT-B/14 (768, 12, 12), ViT-L/14 (1024,
// 24, 16), all with patch 14, image_size 518 and layer scale; each loads
// through the same code from its own config.json. ViT-g/14 uses the SwiGLU
// feed-forward (use_swiglu_ffn), which is supported too.
type BackboneConfig struct {
	HiddenSize        int64   `json:"hidden_size"`
	NumHiddenLayers   int64   `json:"num_hidden_layers"`
	NumAttentionHeads int64   `json:"num_attention_heads"`
	MLPRatio          float64 `json:"mlp_ratio"`
	HiddenAct         string  `json:"hidden_act"`
	LayerNormEps      float64 `json:"layer_norm_eps"`
	ImageSize         int64   `json:"image_size"`
	PatchSize         int64   `json:"patch_size"`
	NumChannels       int64   `json:"num_channels"`
	QKVBias           bool    `json:"qkv_bias"`
	LayerscaleValue   float64 `json:"layerscale_value"`
	UseSwiGLUFFN      bool    `json:"use_swiglu_ffn"`
	UseMaskToken      bool    `json:"use_mask_token"`
}

// DefaultBackboneConfig is Dinov2Config's own defaults, which transformers
// uses for any key a config.json leaves out (a ViT-B/14 at 224 pixels).
func DefaultBackboneConfig() BackboneConfig {
	return BackboneConfig{
		HiddenSize:        768,
		NumHiddenLayers:   12,
		NumAttentionHeads: 12,
		MLPRatio:          4,
		HiddenAct:         GELU,
		LayerNormEps:      1e-6,
		ImageSize:         224,
		PatchSize:         14,
		NumChannels:       3,
		QKVBias:           true,
		LayerscaleValue:   1,
		UseMaskToken:      true,
	}
}

// HeadDim is the width of one attention head.
func (c BackboneConfig) HeadDim() int64 { return c.HiddenSize / c.NumAttentionHeads }

// GridSize is the side of the square patch grid the position embeddings
// were trained on (image_size / patch_size).
func (c BackboneConfig) GridSize() int64 { return c.ImageSize / c.PatchSize }

// MLPHidden is the width of the feed-forward's hidden layer: hidden_size ·
// mlp_ratio, and for SwiGLU two thirds of that rounded up to a multiple of 8.
func (c BackboneConfig) MLPHidden() int64 {
	h := int64(float64(c.HiddenSize) * c.MLPRatio)
	if c.UseSwiGLUFFN {
		h = (h*2/3 + 7) / 8 * 8
	}
	return h
}

// Validate checks the config before any tensor is made.
func (c BackboneConfig) Validate() error {
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"image_size", c.ImageSize},
		{"patch_size", c.PatchSize}, {"num_channels", c.NumChannels},
	} {
		if v.v <= 0 {
			return fmt.Errorf("dinov2 config: %s must be positive, got %d", v.name, v.v)
		}
	}
	switch {
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("dinov2 config: hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.ImageSize < c.PatchSize:
		return fmt.Errorf("dinov2 config: image_size %d is smaller than patch_size %d", c.ImageSize, c.PatchSize)
	case c.MLPRatio <= 0 || c.MLPHidden() <= 0:
		return fmt.Errorf("dinov2 config: mlp_ratio %g gives no hidden units", c.MLPRatio)
	case c.LayerNormEps <= 0:
		return fmt.Errorf("dinov2 config: layer_norm_eps must be positive, got %g", c.LayerNormEps)
	}
	switch c.HiddenAct {
	case GELU, GELUNew, GELUTanh:
	default:
		return fmt.Errorf("dinov2 config: hidden_act %q is not supported (want %s, %s or %s)", c.HiddenAct, GELU, GELUNew, GELUTanh)
	}
	return nil
}

// ReadBackboneConfig reads and validates dir/config.json; keys it leaves
// out take Dinov2Config's defaults.
func ReadBackboneConfig(dir string) (BackboneConfig, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return BackboneConfig{}, fmt.Errorf("dinov2: %w", err)
	}
	c := DefaultBackboneConfig()
	if err := json.Unmarshal(b, &c); err != nil {
		return BackboneConfig{}, fmt.Errorf("dinov2: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return BackboneConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
