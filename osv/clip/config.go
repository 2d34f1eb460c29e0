package clip

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Activations the encoder's MLP supports, as config.json's hidden_act
// spells them.
const (
	GELU      = "gelu"              // exact GELU (erf)
	QuickGELU = "quick_gelu"        // x·sigmoid(1.702·x), OpenAI's CLIP
	GELUNew   = "gelu_new"          // tanh approximation
	GELUTanh  = "gelu_pytorch_tanh" // the same tanh approximation
)

// Config is transformers' CLIPVisionConfig (config.json of a
// CLIPVisionModelWithProjection).
type Config struct {
	HiddenSize        int64   `json:"hidden_size"`
	IntermediateSize  int64   `json:"intermediate_size"`
	ProjectionDim     int64   `json:"projection_dim"`
	NumHiddenLayers   int64   `json:"num_hidden_layers"`
	NumAttentionHeads int64   `json:"num_attention_heads"`
	NumChannels       int64   `json:"num_channels"`
	ImageSize         int64   `json:"image_size"`
	PatchSize         int64   `json:"patch_size"`
	HiddenAct         string  `json:"hidden_act"`
	LayerNormEps      float64 `json:"layer_norm_eps"`
}

// DefaultConfig is SVD's image encoder: OpenCLIP ViT-H/14
// (laion2B-s32B-b79K) as stable-video-diffusion-img2vid-xt ships it.
func DefaultConfig() Config {
	return Config{
		HiddenSize:        1280,
		IntermediateSize:  5120,
		ProjectionDim:     1024,
		NumHiddenLayers:   32,
		NumAttentionHeads: 16,
		NumChannels:       3,
		ImageSize:         224,
		PatchSize:         14,
		HiddenAct:         GELU,
		LayerNormEps:      1e-5,
	}
}

// unsetDefaults are CLIPVisionConfig's own defaults, which transformers
// uses for any key a config.json leaves out.
func unsetDefaults() Config {
	return Config{
		HiddenSize:        768,
		IntermediateSize:  3072,
		ProjectionDim:     512,
		NumHiddenLayers:   12,
		NumAttentionHeads: 12,
		NumChannels:       3,
		ImageSize:         224,
		PatchSize:         32,
		HiddenAct:         QuickGELU,
		LayerNormEps:      1e-5,
	}
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int64 { return c.HiddenSize / c.NumAttentionHeads }

// NumPositions is the number of tokens: one class token and a patch grid of
// (image_size / patch_size)².
func (c Config) NumPositions() int64 {
	g := c.ImageSize / c.PatchSize
	return g*g + 1
}

// Validate checks the config before any tensor is made.
func (c Config) Validate() error {
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"projection_dim", c.ProjectionDim}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"num_channels", c.NumChannels},
		{"image_size", c.ImageSize}, {"patch_size", c.PatchSize},
	} {
		if v.v <= 0 {
			return fmt.Errorf("clip config: %s = %d must be positive", v.name, v.v)
		}
	}
	switch {
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("clip config: hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.PatchSize > c.ImageSize:
		return fmt.Errorf("clip config: patch_size %d is larger than image_size %d", c.PatchSize, c.ImageSize)
	case !(c.LayerNormEps > 0):
		return fmt.Errorf("clip config: layer_norm_eps %g must be positive", c.LayerNormEps)
	}
	switch c.HiddenAct {
	case GELU, QuickGELU, GELUNew, GELUTanh:
	default:
		return fmt.Errorf("clip config: hidden_act %q is not supported (want %s, %s, %s or %s)", c.HiddenAct, GELU, QuickGELU, GELUNew, GELUTanh)
	}
	return nil
}

// ReadConfig reads and validates dir/config.json. Keys it leaves out take
// CLIPVisionConfig's defaults, as in transformers.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("clip: %w", err)
	}
	var probe struct {
		VisionConfig json.RawMessage `json:"vision_config"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Config{}, fmt.Errorf("clip: %s: %w", path, err)
	}
	if probe.VisionConfig != nil {
		return Config{}, fmt.Errorf("clip: %s is a full CLIPConfig (it has vision_config); want the config of a CLIPVisionModelWithProjection", path)
	}
	c := unsetDefaults()
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("clip: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
