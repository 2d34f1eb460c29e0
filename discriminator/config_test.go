package discriminator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEvenTaps(t *testing.T) {
	require.Equal(t, []int{2, 5, 8, 11}, EvenTaps(12, 4), "OSV's layers 2, 5, 8, 11 of 12")
	require.Equal(t, []int{5, 11, 17, 23}, EvenTaps(24, 4))
	require.Equal(t, []int{0, 1, 2, 3}, EvenTaps(4, 4))
	require.Equal(t, []int{11}, EvenTaps(12, 1))

	c, err := Config{}.resolve(12, 384)
	require.NoError(t, err)
	require.Equal(t, []int{2, 5, 8, 11}, c.Layers)
	require.Equal(t, int64(384), c.HeadChannels)
	require.Equal(t, int64(32), c.NormGroups)
	require.Equal(t, int64(4), c.UpsampleFactor)
	require.Equal(t, 0.2, c.LeakySlope)

	c, err = Config{HeadChannels: 48, Layers: []int{1, 3}}.resolve(4, 32)
	require.NoError(t, err)
	require.Equal(t, int64(16), c.NormGroups, "gcd(32, 48)")
	require.Equal(t, 2, c.NumTaps)

	for _, bad := range []struct {
		cfg  Config
		want string
	}{
		{Config{Layers: []int{1, 12}}, "layers[1] = 12 is out of range"},
		{Config{Layers: []int{5, 2}}, "strictly increasing"},
		{Config{NumTaps: 13}, "num_taps 13"},
		{Config{Kernel: 4}, "kernel_size 4"},
		{Config{LatentChannels: -1}, "must not be negative"},
	} {
		_, err := bad.cfg.resolve(12, 384)
		require.ErrorContains(t, err, bad.want)
	}
}

// The released DINOv2 sizes build from their config.json through the same
// code, with the parameter counts of the published Dinov2Model checkpoints
// (ViT-S/14 22,056,576, ViT-B/14 86,580,480, ViT-L/14 304,368,640).
func TestReleasedBackboneConfigs(t *testing.T) {
	common := `"image_size": 518, "patch_size": 14, "layerscale_value": 1.0, "mlp_ratio": 4, "model_type": "dinov2", "hidden_act": "gelu"`
	for _, c := range []struct {
		name, json            string
		hidden, layers, heads int64
		params                int64
	}{
		{"vits14", `{"hidden_size": 384, "num_attention_heads": 6, "num_hidden_layers": 12, ` + common + `}`, 384, 12, 6, 22056576},
		{"vitb14", `{"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, ` + common + `}`, 768, 12, 12, 86580480},
		{"vitl14", `{"hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 24, ` + common + `}`, 1024, 24, 16, 304368640},
		{"vitg14", `{"hidden_size": 1536, "num_attention_heads": 24, "num_hidden_layers": 40, "use_swiglu_ffn": true, ` + common + `}`, 1536, 40, 24, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(c.json), 0o644))
			cfg, err := ReadBackboneConfig(dir)
			require.NoError(t, err)
			require.Equal(t, c.hidden, cfg.HiddenSize)
			require.Equal(t, c.layers, cfg.NumHiddenLayers)
			require.Equal(t, int64(37), cfg.GridSize())
			b := buildBackbone(cfg)
			pos, ok := b.params.Get("embeddings.position_embeddings")
			require.True(t, ok)
			require.Equal(t, []int64{1, 37*37 + 1, c.hidden}, pos.Shape)
			if cfg.UseSwiGLUFFN {
				p, ok := b.params.Get("encoder.layer.0.mlp.weights_in.weight")
				require.True(t, ok)
				require.Equal(t, []int64{2 * 4096, 1536}, p.Shape)
			} else {
				p, ok := b.params.Get("encoder.layer.0.mlp.fc1.weight")
				require.True(t, ok)
				require.Equal(t, []int64{4 * c.hidden, c.hidden}, p.Shape)
			}
			if c.params > 0 {
				require.Equal(t, c.params, b.params.Count())
			}
			taps, err := Config{}.resolve(cfg.NumHiddenLayers, cfg.HiddenSize)
			require.NoError(t, err)
			t.Logf("%s: %d parameters, taps %v", c.name, b.params.Count(), taps.Layers)
		})
	}
}
