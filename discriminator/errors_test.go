package discriminator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// toGotorch hands an engine tensor to the caller's side, released by the
// test's cleanup.
func toGotorch(t *testing.T, x *torch.Tensor) gotorch.Tensor {
	t.Helper()
	g, err := torch.ToGotorch(x)
	require.NoError(t, err)
	t.Cleanup(func() { torch.Release(g) })
	return g
}

func TestForwardLeaksNothing(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	latents := toGotorch(t, randn(t, s, 1, 2, 3, 4, 8, 8))
	pixels := toGotorch(t, s.Tanh(randn(t, s, 2, 6, 3, 32, 32)))
	bad := toGotorch(t, randn(t, s, 3, 2, 3, 5, 8, 8))
	start := torch.Live()

	b, err := LoadBackbone(fixture.Path("dinov2"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	d, err := New(b, Config{}, 3)
	require.NoError(t, err)

	// A training step: forward, backward, gradients read and dropped.
	logits, err := d.Forward(latents)
	require.NoError(t, err)
	require.Len(t, logits, 2*len(d.Config.Layers))
	func() {
		c := torch.NewScope()
		defer c.Close()
		var loss *torch.Tensor
		require.NoError(t, apply(func() {
			var ls []*torch.Tensor
			for _, l := range logits {
				x, err := torch.FromGotorch(c, l)
				require.NoError(t, err)
				ls = append(ls, x)
			}
			loss = total(c, ls)
		}))
		require.NoError(t, torch.Backward(loss))
		for _, p := range d.Trainable() {
			g, err := p.T.Grad(c)
			require.NoError(t, err)
			require.NotNil(t, g, p.Name)
			require.NoError(t, p.T.ZeroGrad())
		}
	}()
	for _, l := range logits {
		torch.Release(l)
	}
	logits, err = d.ForwardPixels(pixels, 3)
	require.NoError(t, err)
	for _, l := range logits {
		torch.Release(l)
	}
	out, err := b.Forward(pixels)
	require.NoError(t, err)
	require.Len(t, out.HiddenStates, int(b.Config.NumHiddenLayers)+1)
	require.Equal(t, []int64{6, b.Config.HiddenSize}, out.PoolerOutput.Shape())
	for _, h := range append(out.HiddenStates, out.LastHiddenState, out.PoolerOutput) {
		torch.Release(h)
	}

	// A failed forward releases everything it made.
	_, err = d.Forward(bad)
	require.ErrorContains(t, err, "latents: shape")

	require.NoError(t, d.Close())
	require.NoError(t, d.Close())
	_, err = d.Forward(latents)
	require.ErrorContains(t, err, "closed")
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	_, err = b.Forward(pixels)
	require.ErrorContains(t, err, "closed")
	require.Equal(t, start, torch.Live(), "native tensors leaked by New, Forward, Backward and Close")
}

func TestForwardRejectsBadInputs(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{})
	s := torch.NewScope()
	defer s.Close()
	good := randn(t, s, 1, 1, 2, 4, 8, 8)
	latentCases := []struct {
		name    string
		latents *torch.Tensor
		want    string
	}{
		{"wrong latent channels", randn(t, s, 2, 1, 2, 8, 8, 8), "latents: shape [1 2 8 8 8], want [batch, frames, 4, height, width]"},
		{"rank 4", randn(t, s, 3, 2, 4, 8, 8), "latents: shape [2 4 8 8], want [batch, frames, 4, height, width]"},
		{"rank 6", randn(t, s, 4, 1, 1, 2, 4, 8, 8), "latents: shape"},
		{"no frames", s.Slice(good, 1, 0, 0), "latents: shape [1 0 4 8 8]"},
		{"integer", s.Cast(good, torch.Int64), "latents: dtype int64"},
	}
	px := s.Tanh(randn(t, s, 5, 6, 3, 32, 32))
	pixelCases := []struct {
		name   string
		pixels *torch.Tensor
		frames int
		want   string
	}{
		{"frames do not divide", px, 4, "6 images are not a whole number of videos of 4 frames"},
		{"zero frames", px, 0, "videos of 0 frames"},
		{"four channels", randn(t, s, 6, 6, 4, 32, 32), 3, "pixels: shape [6 4 32 32], want [batch·frames, 3, height, width]"},
		{"rank 5", randn(t, s, 7, 2, 3, 3, 32, 32), 3, "pixels: shape [2 3 3 32 32]"},
	}
	backboneCases := []struct {
		name   string
		pixels *torch.Tensor
		want   string
	}{
		{"smaller than a patch", randn(t, s, 8, 1, 3, 2, 32), "image 2×32 is smaller than one"},
		{"two channels", randn(t, s, 9, 1, 2, 32, 32), "pixel_values: shape [1 2 32 32], want [batch, 3, height, width]"},
	}
	gs := map[*torch.Tensor]gotorch.Tensor{}
	for _, c := range latentCases {
		gs[c.latents] = toGotorch(t, c.latents)
	}
	for _, c := range pixelCases {
		gs[c.pixels] = toGotorch(t, c.pixels)
	}
	for _, c := range backboneCases {
		gs[c.pixels] = toGotorch(t, c.pixels)
	}

	start := torch.Live()
	for _, c := range latentCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Forward(gs[c.latents])
			require.ErrorContains(t, err, c.want)
			t.Log(err)
		})
	}
	_, err := d.Forward(gotorch.Tensor{})
	require.ErrorContains(t, err, "latents")

	for _, c := range pixelCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.ForwardPixels(gs[c.pixels], c.frames)
			require.ErrorContains(t, err, c.want)
			t.Log(err)
		})
	}
	for _, c := range backboneCases {
		t.Run("backbone "+c.name, func(t *testing.T) {
			_, err := b.Forward(gs[c.pixels])
			require.ErrorContains(t, err, c.want)
			t.Log(err)
		})
	}
	require.Equal(t, start, torch.Live(), "failed forwards leaked")
}

func TestNewRejectsBadConfig(t *testing.T) {
	b := loadBackbone(t)
	start := torch.Live()
	_, err := New(b, Config{Layers: []int{0, int(b.Config.NumHiddenLayers)}}, 0)
	require.ErrorContains(t, err, "out of range")
	_, err = New(b, Config{Kernel: 2}, 0)
	require.ErrorContains(t, err, "kernel_size 2")
	_, err = New(nil, Config{}, 0)
	require.ErrorContains(t, err, "backbone is closed")
	require.Equal(t, start, torch.Live())
}

// backboneDir copies the fixture backbone's config into a new folder and
// writes weights as its model.safetensors (nil: the fixture's own).
func backboneDir(t *testing.T, config string, weights []byte) string {
	t.Helper()
	dir := t.TempDir()
	var err error
	if config == "" {
		b, err := os.ReadFile(fixture.Path("dinov2", "config.json"))
		require.NoError(t, err)
		config = string(b)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644))
	if weights == nil {
		weights, err = os.ReadFile(fixture.Path("dinov2", "model.safetensors"))
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), weights, 0o644))
	return dir
}

func TestLoadBackboneRejectsBadInput(t *testing.T) {
	start := torch.Live()
	weights, err := os.ReadFile(fixture.Path("dinov2", "model.safetensors"))
	require.NoError(t, err)
	s := torch.NewScope()
	ws, err := torch.LoadFile(s, fixture.Path("dinov2", "model.safetensors"), torch.CPU)
	require.NoError(t, err)
	delete(ws, "embeddings.mask_token")
	ws["layernorm.bias"] = s.Reshape(ws["layernorm.bias"], 2, -1)
	edited := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, torch.SaveFile(edited, ws, nil))
	s.Close()
	editedBytes, err := os.ReadFile(edited)
	require.NoError(t, err)
	noWeights := backboneDir(t, "", nil)
	require.NoError(t, os.Remove(filepath.Join(noWeights, "model.safetensors")))

	for _, c := range []struct {
		name, dir string
		want      []string
	}{
		{"missing folder", filepath.Join(t.TempDir(), "nope"), []string{"nope", "no such file"}},
		{"bad json", backboneDir(t, `{"hidden_size": `, nil), []string{"config.json", "unexpected end of JSON input"}},
		{"heads do not divide", backboneDir(t, `{"hidden_size": 32, "num_attention_heads": 5}`, nil), []string{"config.json", "num_attention_heads 5"}},
		{"unknown activation", backboneDir(t, `{"hidden_act": "relu6"}`, nil), []string{"hidden_act \"relu6\""}},
		{"no weights", noWeights, []string{"holds no weights"}},
		{"truncated weights", backboneDir(t, "", weights[:len(weights)-64]), []string{"model.safetensors", "run past the end of the data region"}},
		{"missing and mis-shaped keys", backboneDir(t, "", editedBytes), []string{
			"missing keys: embeddings.mask_token", "layernorm.bias: checkpoint [2 16], model [32]"}},
		{"config of another size", backboneDir(t, `{"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "patch_size": 4, "image_size": 32}`, nil),
			[]string{"mis-shaped keys"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := LoadBackbone(c.dir)
			require.Error(t, err)
			require.Nil(t, b)
			t.Log(err)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	_, err = LoadBackbone(fixture.Path("dinov2"), WithDevice("tpu"))
	require.ErrorContains(t, err, "tpu")
	_, err = LoadBackbone(fixture.Path("dinov2"), WithDType("uint8"))
	require.ErrorContains(t, err, "uint8")
	require.Equal(t, start, torch.Live(), "failed loads leaked")
}
