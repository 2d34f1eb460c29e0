package clip

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// encoderDir makes a folder with config (nil: the fixture's config.json)
// and the tensors ws as model.safetensors (nil: the fixture's weights).
func encoderDir(t *testing.T, config []byte, ws map[string]*torch.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	var err error
	if config == nil {
		config, err = os.ReadFile(fixture.Path("pipeline", "image_encoder", "config.json"))
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644))
	if ws == nil {
		b, err := os.ReadFile(fixture.Path("pipeline", "image_encoder", "model.safetensors"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644))
	} else {
		require.NoError(t, torch.SaveFile(filepath.Join(dir, "model.safetensors"), ws, nil))
	}
	return dir
}

// fixtureWeights loads the fixture's weights into s.
func fixtureWeights(t *testing.T, s *torch.Scope) map[string]*torch.Tensor {
	t.Helper()
	ws, err := torch.LoadFile(s, fixture.Path("pipeline", "image_encoder", "model.safetensors"), torch.CPU)
	require.NoError(t, err)
	return ws
}

func TestLoadRejectsBadInput(t *testing.T) {
	start := torch.Live()
	cfg, err := ReadConfig(fixture.Path("pipeline", "image_encoder"))
	require.NoError(t, err)
	positions := (cfg.ImageSize/cfg.PatchSize)*(cfg.ImageSize/cfg.PatchSize) + 1
	s := torch.NewScope()
	ws := fixtureWeights(t, s)
	const patch = "vision_model.embeddings.patch_embedding.weight"
	ws[patch+"x"] = ws[patch]
	delete(ws, patch)
	ws["visual_projection.weight"] = s.Transpose(s.Cat(0, ws["visual_projection.weight"], ws["visual_projection.weight"]), 0, 1)
	renamed := encoderDir(t, nil, ws)
	badIDs := encoderDir(t, nil, func() map[string]*torch.Tensor {
		ws := fixtureWeights(t, s)
		ids, err := torch.Arange(s, 0, 7, 1, torch.Int64, torch.CPU)
		require.NoError(t, err)
		ws[positionIDs] = s.Reshape(ids, 1, 7)
		return ws
	}())
	s.Close()

	noWeights := encoderDir(t, nil, nil)
	require.NoError(t, os.Remove(filepath.Join(noWeights, "model.safetensors")))
	truncated := encoderDir(t, nil, nil)
	b, err := os.ReadFile(filepath.Join(truncated, "model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(truncated, "model.safetensors"), b[:len(b)-100], 0o644))

	cases := []struct {
		name, dir string
		want      []string
	}{
		{"missing folder", filepath.Join(t.TempDir(), "nope"), []string{"nope", "no such file"}},
		{"missing config", t.TempDir(), []string{"config.json", "no such file"}},
		{"unknown activation", encoderDir(t, []byte(`{"hidden_act": "relu"}`), nil), []string{"config.json", `hidden_act "relu"`}},
		{"heads do not divide width", encoderDir(t, []byte(`{"hidden_size": 30, "num_attention_heads": 4}`), nil), []string{"config.json", "not divisible"}},
		{"full CLIPConfig", encoderDir(t, []byte(`{"vision_config": {}}`), nil), []string{"config.json", "vision_config"}},
		{"not json", encoderDir(t, []byte(`{`), nil), []string{"config.json", "unexpected end of JSON input"}},
		{"no weights", noWeights, []string{"holds no weights"}},
		{"truncated weights", truncated, []string{"model.safetensors", "run past the end of the data region"}},
		{"missing, unexpected and mis-shaped keys", renamed, []string{
			"missing keys: " + patch, "unexpected keys: " + patch + "x",
			fmt.Sprintf("visual_projection.weight: checkpoint [%d %d], model [%d %d]", cfg.HiddenSize, 2*cfg.ProjectionDim, cfg.ProjectionDim, cfg.HiddenSize)}},
		{"mis-shaped position_ids", badIDs, []string{fmt.Sprintf("%s: checkpoint [1 7], model [1 %d]", positionIDs, positions)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Load(c.dir)
			require.Error(t, err)
			require.Nil(t, m)
			t.Log(err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	_, err = Load(fixture.Path("pipeline", "image_encoder"), WithDevice("tpu:0"))
	require.ErrorContains(t, err, "tpu:0")
	_, err = Load(fixture.Path("pipeline", "image_encoder"), WithDType("int64"))
	require.ErrorContains(t, err, "int64")
	require.Equal(t, start, torch.Live(), "native tensors leaked by failed loads")
}

func TestLoadAcceptsPositionIDs(t *testing.T) {
	// Older transformers versions saved the position_ids buffer with the
	// weights; such a checkpoint gives the same embeddings.
	s := torch.NewScope()
	defer s.Close()
	ws := fixtureWeights(t, s)
	n := ws["vision_model.embeddings.position_embedding.weight"].Size(0)
	ids, err := torch.Arange(s, 0, float64(n), 1, torch.Int64, torch.CPU)
	require.NoError(t, err)
	ws[positionIDs] = s.Reshape(ids, 1, n)
	withIDs, err := Load(encoderDir(t, nil, ws), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer withIDs.Close()
	plain, err := Load(fixture.Path("pipeline", "image_encoder"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer plain.Close()

	in := loadCase(t, s, "clip", testDevice)
	var a, b []float32
	func() {
		defer torch.Recover(&err)
		a, err = withIDs.Apply(s, in["pixel_values"]).Float32s()
		require.NoError(t, err)
		b, err = plain.Apply(s, in["pixel_values"]).Float32s()
	}()
	require.NoError(t, err)
	require.Equal(t, b, a)
}

func TestLoadPreprocessorRejectsBadInput(t *testing.T) {
	write := func(body string) string {
		path := filepath.Join(t.TempDir(), PreprocessorConfigFile)
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
		return path
	}
	cases := []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.json"), []string{"nope.json", "no such file"}},
		{"folder without config", t.TempDir(), []string{PreprocessorConfigFile, "no such file"}},
		{"bad crop_size", write(`{"crop_size": {"height": 224}}`), []string{PreprocessorConfigFile, "crop_size"}},
		{"mean and std differ in length", write(`{"image_mean": [0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`), []string{PreprocessorConfigFile, "image_mean has 2 entries and image_std 3"}},
		{"zero std", write(`{"image_std": [0.5, 0, 0.5]}`), []string{PreprocessorConfigFile, "image_std[1] = 0"}},
		{"zero size", write(`{"crop_size": 0}`), []string{PreprocessorConfigFile, "crop_size 0×0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := LoadPreprocessor(c.path)
			require.Error(t, err)
			require.Nil(t, p)
			t.Log(err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
	// Keys left out take CLIPImageProcessor's defaults; crop_size may be
	// one integer.
	p, err := LoadPreprocessor(write(`{"crop_size": 196}`))
	require.NoError(t, err)
	require.Equal(t, &Preprocessor{Mean: openaiMean, Std: openaiStd, Height: 196, Width: 196}, p)
}

// fixtureImage returns the fixture's image as [1, 3, H, W] in [0, 1] and
// its pixel_values, as gotorch tensors released by the test's cleanup.
func fixtureImage(t *testing.T) (image, pixels gotorch.Tensor) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	in := loadCase(t, s, "clip", testDevice)
	export := func(x *torch.Tensor) gotorch.Tensor {
		g, err := torch.ToGotorch(x)
		require.NoError(t, err)
		t.Cleanup(func() { torch.Release(g) })
		return g
	}
	return export(imageFromU8(s, in["image_u8"])), export(in["pixel_values"])
}

// derive applies f to g and returns the result as a gotorch tensor.
func derive(t *testing.T, g gotorch.Tensor, f func(s *torch.Scope, x *torch.Tensor) *torch.Tensor) gotorch.Tensor {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, g)
	require.NoError(t, err)
	out, err := torch.ToGotorch(f(s, x))
	require.NoError(t, err)
	t.Cleanup(func() { torch.Release(out) })
	return out
}

func TestRejectsBadImages(t *testing.T) {
	image, pixels := fixtureImage(t)
	m, err := Load(fixture.Path("pipeline", "image_encoder"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	p, err := LoadPreprocessor(fixture.Path("pipeline", "feature_extractor"))
	require.NoError(t, err)

	flat := func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		return s.Reshape(x, x.Size(1), x.Size(2), x.Size(3))
	}
	fourChannels := func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Cat(1, x, s.Slice(x, 1, 0, 1)) }
	integer := func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Cast(x, torch.Int64) }
	oneRow := func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Contiguous(s.Slice(x, 2, 0, 1)) }
	smaller := func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		return s.Contiguous(s.Slice(x, 3, 0, x.Size(3)-1))
	}

	prep := []struct {
		name   string
		images gotorch.Tensor
		want   string
	}{
		{"rank 3", derive(t, image, flat), "images: shape"},
		{"four channels", derive(t, image, fourChannels), "want [batch, 3, height, width]"},
		{"integer pixels", derive(t, image, integer), "images: dtype int64"},
		{"one row", derive(t, image, oneRow), "height 1 is too small"},
		{"missing tensor", gotorch.Tensor{}, "images"},
	}
	model := []struct {
		name   string
		pixels gotorch.Tensor
		want   string
	}{
		{"rank 3", derive(t, pixels, flat), "pixel_values: shape"},
		{"four channels", derive(t, pixels, fourChannels), "pixel_values: shape"},
		{"not image_size", derive(t, pixels, smaller), fmt.Sprintf("pixel_values: shape [1 %d %d %d], want [batch, %d, %d, %d]",
			m.Config.NumChannels, m.Config.ImageSize, m.Config.ImageSize-1, m.Config.NumChannels, m.Config.ImageSize, m.Config.ImageSize)},
		{"integer pixels", derive(t, pixels, integer), "pixel_values: dtype int64"},
		{"unresized image", image, "pixel_values: shape"},
		{"missing tensor", gotorch.Tensor{}, "pixel_values"},
	}
	start := torch.Live()
	for _, c := range prep {
		t.Run("preprocess/"+c.name, func(t *testing.T) {
			out, err := p.Preprocess(c.images)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, out.T)
			t.Log(err)
			out, err = p.Resize(c.images)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, out.T)
		})
	}
	for _, c := range model {
		t.Run("encoder/"+c.name, func(t *testing.T) {
			out, err := m.ImageEmbeds(c.pixels)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, out.T)
			t.Log(err)
		})
	}
	var nilPre *Preprocessor
	_, err = nilPre.Preprocess(image)
	require.ErrorContains(t, err, "nil")
	require.Equal(t, start, torch.Live(), "native tensors leaked by failed calls")
}

func TestLeaksNothing(t *testing.T) {
	image, _ := fixtureImage(t)
	start := torch.Live()
	m, err := Load(fixture.Path("pipeline", "image_encoder"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	p, err := LoadPreprocessor(fixture.Path("pipeline", "feature_extractor"))
	require.NoError(t, err)

	resized, err := p.Resize(image)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3, p.Height, p.Width}, resized.Shape())
	pixels, err := p.Preprocess(image)
	require.NoError(t, err)
	embeds, err := m.ImageEmbeds(pixels)
	require.NoError(t, err)
	require.Equal(t, []int64{1, m.Config.ProjectionDim}, embeds.Shape())
	torch.Release(resized)
	torch.Release(pixels)
	torch.Release(embeds)

	// A failed call releases everything it made.
	_, err = m.ImageEmbeds(image)
	require.ErrorContains(t, err, "pixel_values: shape")

	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	require.Equal(t, start, torch.Live(), "native tensors leaked by Load, Preprocess, ImageEmbeds and Close")
	_, err = m.ImageEmbeds(image)
	require.ErrorIs(t, err, errClosed)
	require.Equal(t, start, torch.Live())
}

func TestNewMatchesConfig(t *testing.T) {
	cfg, err := ReadConfig(fixture.Path("pipeline", "image_encoder"))
	require.NoError(t, err)
	cfg.HiddenAct = QuickGELU
	start := torch.Live()
	m, err := New(cfg, WithDevice(testDevice.String()), WithSeed(3))
	require.NoError(t, err)
	loaded, err := Load(fixture.Path("pipeline", "image_encoder"))
	require.NoError(t, err)
	require.Equal(t, loaded.NumParams(), m.NumParams())
	require.NoError(t, loaded.Close())

	_, pixels := fixtureImage(t)
	out, err := m.ImageEmbeds(pixels)
	require.NoError(t, err)
	require.Equal(t, []int64{1, cfg.ProjectionDim}, out.Shape())
	torch.Release(out)
	require.NoError(t, m.Close())
	require.Equal(t, start, torch.Live())

	_, err = New(Config{HiddenSize: 32})
	require.ErrorContains(t, err, "intermediate_size = 0")
}
