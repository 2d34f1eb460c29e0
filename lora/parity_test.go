package lora

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

type loraCase struct {
	Adapter string `json:"adapter"`
	Base    string `json:"base"`
	Inputs  string `json:"inputs"`
}

func forward(t *testing.T, m *unet.Model, s *torch.Scope, in map[string]*torch.Tensor) []float32 {
	t.Helper()
	var err error
	var y *torch.Tensor
	func() {
		defer torch.Recover(&err)
		y = m.Apply(s, in["sample"], in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
	}()
	require.NoError(t, err)
	v, err := y.Float32s()
	require.NoError(t, err)
	return v
}

func rel(t *testing.T, got, want []float32) float64 {
	t.Helper()
	r, err := fixture.RelL2(got, want)
	require.NoError(t, err)
	return r
}

func weights(t *testing.T, m *unet.Model) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range m.Params().List() {
		v, err := p.T.Float32s()
		require.NoError(t, err)
		out[p.Name] = v
	}
	return out
}

func TestParityLoRA(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	var c loraCase
	require.NoError(t, fixture.JSON("lora", &c))
	m, err := unet.Load(fixture.Path(c.Base), unet.WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	base := weights(t, m)

	s := torch.NewScope()
	defer s.Close()
	in, err := torch.LoadFile(s, fixture.Path("io", c.Inputs), testDevice)
	require.NoError(t, err)
	want, err := torch.LoadFile(s, fixture.Path("io", "lora.safetensors"), testDevice)
	require.NoError(t, err)
	ref, err := want["out"].Float32s()
	require.NoError(t, err)
	plain := forward(t, m, s, in)

	set, err := Load(m, fixture.Path(filepath.Dir(c.Adapter)))
	require.NoError(t, err)
	defer set.Close()
	require.NotEmpty(t, set.Modules())

	e := rel(t, forward(t, m, s, in), ref)
	t.Logf("unet + LoRA (%d adapted layers, %d parameters) on %s: relative L2 error %.3g", len(set.Modules()), set.NumParams(), testDevice, e)
	require.LessOrEqual(t, e, 1e-4)
	require.Greater(t, rel(t, plain, ref), 1e-3, "the adapter must change the output for the test to mean anything")

	// Disabled (weights still exactly the base ones): the base model's output.
	set.Enable(false)
	require.LessOrEqual(t, rel(t, forward(t, m, s, in), plain), 1e-7, "disabled adapter")
	set.Enable(true)

	held := map[string]*torch.Tensor{}
	for _, l := range set.layers {
		held[l.ModulePath()] = l.Base().T
	}
	require.NoError(t, set.Merge())
	for _, l := range set.layers { // in place, as a recorded graph needs
		require.Same(t, held[l.ModulePath()], l.Base().T, "merging replaced %s's weight", l.ModulePath())
	}
	e = rel(t, forward(t, m, s, in), ref)
	t.Logf("merged: relative L2 error %.3g", e)
	require.LessOrEqual(t, e, 1e-4)
	require.Error(t, set.Merge(), "merging twice")

	require.NoError(t, set.Unmerge())
	for _, l := range set.layers {
		require.Same(t, held[l.ModulePath()], l.Base().T, "unmerging replaced %s's weight", l.ModulePath())
	}
	worst := 0.0
	for name, w := range weights(t, m) {
		worst = max(worst, rel(t, w, base[name]))
	}
	t.Logf("unmerged weights against the base: worst relative L2 error %.3g", worst)
	require.LessOrEqual(t, worst, 1e-6)
}

func TestInjectSaveLoad(t *testing.T) {
	start := torch.Live()
	m, err := unet.Load(fixture.Path("pipeline", "unet"), unet.WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	s := torch.NewScope()
	defer s.Close()
	in, err := torch.LoadFile(s, fixture.Path("io", "unet.safetensors"), testDevice)
	require.NoError(t, err)
	plain := forward(t, m, s, in)

	cfg := DefaultConfig(2)
	set, err := Inject(m, cfg, 1)
	require.NoError(t, err)
	// B starts at zero: the model is unchanged.
	require.LessOrEqual(t, rel(t, forward(t, m, s, in), plain), 1e-7)
	// Give B values, save, reload into a fresh model: same output.
	for _, p := range set.Trainable() {
		if p.Shape[1] == cfg.R {
			nt, err := torch.Full(nil, p.Shape, 0.01, torch.Float32, testDevice)
			require.NoError(t, err)
			p.T.Free()
			p.T = nt
		}
	}
	adapted := forward(t, m, s, in)
	require.Greater(t, rel(t, adapted, plain), 1e-4)
	dir := t.TempDir()
	require.NoError(t, set.Save(dir))
	_, err = Inject(m, cfg, 2)
	require.ErrorContains(t, err, "already has an adapter")
	require.NoError(t, set.Close())
	require.LessOrEqual(t, rel(t, forward(t, m, s, in), plain), 1e-7, "closed adapters leave the base model")

	set2, err := Load(m, dir)
	require.NoError(t, err)
	require.LessOrEqual(t, rel(t, forward(t, m, s, in), adapted), 1e-6)
	require.NoError(t, set2.Close())

	// peft's save_pretrained layout: every key behind base_model.model.
	saved, err := torch.LoadFile(s, filepath.Join(dir, "adapter_model.safetensors"), testDevice)
	require.NoError(t, err)
	prefixed, mixed := map[string]*torch.Tensor{}, map[string]*torch.Tensor{}
	i := 0
	for k, v := range saved {
		prefixed["base_model.model."+k] = v
		if i%2 == 0 {
			k = "base_model.model." + k
		}
		mixed[k] = v
		i++
	}
	peftDir := t.TempDir()
	cfgJSON, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(peftDir, "adapter_config.json"), cfgJSON, 0o644))
	require.NoError(t, torch.SaveFile(filepath.Join(peftDir, "adapter_model.safetensors"), prefixed, nil))
	set3, err := Load(m, peftDir)
	require.NoError(t, err)
	require.LessOrEqual(t, rel(t, forward(t, m, s, in), adapted), 1e-6, "the prefixed layout loads the same adapters")
	require.NoError(t, set3.Close())
	require.NoError(t, torch.SaveFile(filepath.Join(peftDir, "adapter_model.safetensors"), mixed, nil))
	_, err = Load(m, peftDir)
	require.ErrorContains(t, err, "unexpected keys: base_model.model.")

	_, err = Load(m, t.TempDir())
	require.ErrorContains(t, err, "adapter_config.json")
	_, err = Inject(m, Config{R: 2, LoraAlpha: 2, TargetModules: []string{"nothing_here"}}, 0)
	require.ErrorContains(t, err, "no layer matches")
	_, err = Inject(m, Config{R: 0, LoraAlpha: 2, TargetModules: []string{"to_q"}}, 0)
	require.ErrorContains(t, err, "r must be positive")
	s.Close()
	require.NoError(t, m.Close())
	require.Equal(t, start, torch.Live())
}
