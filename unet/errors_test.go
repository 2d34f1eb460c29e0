package unet

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// unetDir copies the fixture's config.json into a new folder and writes
// weights bytes as its safetensors file (nil: the fixture's own weights).
func unetDir(t *testing.T, weights []byte) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile(fixture.Path("pipeline", "unet", "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644))
	if weights == nil {
		weights, err = os.ReadFile(fixture.Path("pipeline", "unet", "diffusion_pytorch_model.safetensors"))
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), weights, 0o644))
	return dir
}

// rawSafetensors builds a file from a header map and a data region.
func rawSafetensors(t *testing.T, header map[string]any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

func TestLoadRejectsBadInput(t *testing.T) {
	start := torch.Live()
	fixtureWeights, err := os.ReadFile(fixture.Path("pipeline", "unet", "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)

	// A checkpoint with one tensor renamed and one reshaped.
	s := torch.NewScope()
	ws, err := torch.LoadFile(s, fixture.Path("pipeline", "unet", "diffusion_pytorch_model.safetensors"), torch.CPU)
	require.NoError(t, err)
	ws["conv_in.weightx"] = ws["conv_in.weight"]
	delete(ws, "conv_in.weight")
	ws["conv_out.bias"] = s.Reshape(ws["conv_out.bias"], 2, 2)
	renamed := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, torch.SaveFile(renamed, ws, nil))
	s.Close()
	renamedBytes, err := os.ReadFile(renamed)
	require.NoError(t, err)

	noConfig := t.TempDir()
	badConfig := unetDir(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(badConfig, "config.json"), []byte(`{"block_out_channels": [30]}`), 0o644))
	notJSON := unetDir(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(notJSON, "config.json"), []byte(`{`), 0o644))
	// The fixture's config with its first block's channels not a multiple
	// of GroupNorm's 32 groups.
	var cfg map[string]any
	raw, err := os.ReadFile(fixture.Path("pipeline", "unet", "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	channels, ok := cfg["block_out_channels"].([]any)
	require.True(t, ok, "the fixture's block_out_channels")
	channels[0] = 30
	raw, err = json.Marshal(cfg)
	require.NoError(t, err)
	badChannels := unetDir(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(badChannels, "config.json"), raw, 0o644))
	noWeights := unetDir(t, nil)
	require.NoError(t, os.Remove(filepath.Join(noWeights, "diffusion_pytorch_model.safetensors")))

	cases := []struct {
		name, dir string
		want      []string
	}{
		{"missing folder", filepath.Join(t.TempDir(), "nope"), []string{"nope", "no such file"}},
		{"missing config", noConfig, []string{"config.json", "no such file"}},
		{"config not JSON", notJSON, []string{"config.json", "unexpected end of JSON input"}},
		{"block types missing", badConfig, []string{"config.json", "0 down and 0 up block types for 1 block_out_channels"}},
		{"channels not a multiple of 32", badChannels, []string{"config.json", "block_out_channels[0] = 30 must be a positive multiple of 32"}},
		{"no weights", noWeights, []string{"holds no weights"}},
		{"truncated weights", unetDir(t, fixtureWeights[:len(fixtureWeights)-100]), []string{"diffusion_pytorch_model.safetensors", "run past the end of the data region"}},
		{"header length past the end", unetDir(t, binary.LittleEndian.AppendUint64(nil, 1<<20)), []string{"diffusion_pytorch_model.safetensors", "header length 1048576 runs past the end of the file"}},
		{"offsets out of range", unetDir(t, rawSafetensors(t, map[string]any{
			"conv_in.bias": map[string]any{"dtype": "F32", "shape": []int{32}, "data_offsets": []int{0, 128}},
		}, make([]byte, 64))), []string{"conv_in.bias", "data_offsets [0, 128] run past the end of the data region (64 bytes)"}},
		{"unknown dtype", unetDir(t, rawSafetensors(t, map[string]any{
			"conv_in.bias": map[string]any{"dtype": "Q7", "shape": []int{32}, "data_offsets": []int{0, 128}},
		}, make([]byte, 128))), []string{"conv_in.bias", "Q7"}},
		{"missing, unexpected and mis-shaped keys", unetDir(t, renamedBytes), []string{
			"missing keys: conv_in.weight", "unexpected keys: conv_in.weightx", "conv_out.bias: checkpoint [2 2], model [4]"}},
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
	_, err = Load(fixture.Path("pipeline", "unet"), WithDevice("tpu:0"))
	require.ErrorContains(t, err, "tpu:0")
	_, err = Load(fixture.Path("pipeline", "unet"), WithDType("int64"))
	require.ErrorContains(t, err, "int64")
	require.Equal(t, start, torch.Live(), "native tensors leaked by failed loads")
}

// inputs returns the fixture's UNet inputs as gotorch tensors (released by
// the test's cleanup).
func inputs(t *testing.T) map[string]gotorch.Tensor {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	in := loadCase(t, s, "unet", testDevice)
	out := map[string]gotorch.Tensor{}
	for k, v := range in {
		g, err := torch.ToGotorch(v)
		require.NoError(t, err)
		out[k] = g
		t.Cleanup(func() { torch.Release(g) })
	}
	return out
}

func TestForwardLeaksNothing(t *testing.T) {
	in := inputs(t)
	start := torch.Live()
	m, err := Load(fixture.Path("pipeline", "unet"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	out, err := m.Forward(in["sample"], in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
	require.NoError(t, err)
	require.Equal(t, in["out"].Shape(), out.Shape())
	torch.Release(out)

	// A failed forward (wrong channels) releases everything it made.
	s := torch.NewScope()
	smp, err := torch.FromGotorch(s, in["sample"])
	require.NoError(t, err)
	bad, err := torch.ToGotorch(s.Contiguous(s.Slice(smp, 2, 0, 5)))
	require.NoError(t, err)
	s.Close()
	_, err = m.Forward(bad, in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
	require.ErrorContains(t, err, "sample: shape")
	torch.Release(bad)

	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	require.Equal(t, start, torch.Live(), "native tensors leaked by Load, Forward and Close")
	_, err = m.Forward(in["sample"], in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
	require.ErrorIs(t, err, errClosed, "forward after Close")
	_, err = (&Denoiser{UNet: m}).Denoise(in["sample"], in["timestep"], Conditioning{})
	require.ErrorIs(t, err, errClosed, "denoise after Close")
	require.Equal(t, start, torch.Live())
}

func TestForwardRejectsBadInputs(t *testing.T) {
	in := inputs(t)
	m, err := Load(fixture.Path("pipeline", "unet"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	s := torch.NewScope()
	defer s.Close()
	conv := func(f func(x *torch.Tensor) *torch.Tensor, name string) gotorch.Tensor {
		x, err := torch.FromGotorch(s, in[name])
		require.NoError(t, err)
		g, err := torch.ToGotorch(f(x))
		require.NoError(t, err)
		t.Cleanup(func() { torch.Release(g) })
		return g
	}
	intSample := conv(func(x *torch.Tensor) *torch.Tensor { return s.Cast(x, torch.Int64) }, "sample")
	flat := conv(func(x *torch.Tensor) *torch.Tensor { return s.Reshape(x, -1) }, "sample")
	odd := conv(func(x *torch.Tensor) *torch.Tensor { return s.Contiguous(s.Slice(x, 4, 0, x.Size(4)-1)) }, "sample")
	badCtx := conv(func(x *torch.Tensor) *torch.Tensor { return s.Cat(2, x, x) }, "encoder_hidden_states")
	badIDs := conv(func(x *torch.Tensor) *torch.Tensor { return s.Slice(x, 1, 0, 2) }, "added_time_ids")

	cases := []struct {
		name                string
		sample, ctx, ids, t gotorch.Tensor
		want                string
	}{
		{"integer sample", intSample, in["encoder_hidden_states"], in["added_time_ids"], in["timestep"], "sample: dtype int64"},
		{"flat sample", flat, in["encoder_hidden_states"], in["added_time_ids"], in["timestep"], "sample: shape"},
		{"size not divisible", odd, in["encoder_hidden_states"], in["added_time_ids"], in["timestep"], "must be divisible"},
		{"wrong context width", in["sample"], badCtx, in["added_time_ids"], in["timestep"], "encoder_hidden_states: shape"},
		{"two time ids", in["sample"], in["encoder_hidden_states"], badIDs, in["timestep"], "added_time_ids: shape"},
		{"missing tensor", in["sample"], gotorch.Tensor{}, in["added_time_ids"], in["timestep"], "encoder_hidden_states"},
	}
	start := torch.Live()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := m.Forward(c.sample, c.t, c.ctx, c.ids)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, out.T)
			t.Log(err)
		})
	}
	require.Equal(t, start, torch.Live())
}

// Save writes a folder that Load reads back to the same weights.
func TestSaveLoadRoundTrip(t *testing.T) {
	m, err := Load(fixture.Path("pipeline", "unet"))
	require.NoError(t, err)
	defer m.Close()
	dir := t.TempDir()
	require.NoError(t, m.Save(dir))
	back, err := Load(dir)
	require.NoError(t, err)
	defer back.Close()
	require.Equal(t, m.Config, back.Config)
	for _, p := range m.Params().List() {
		q, ok := back.Params().Get(p.Name)
		require.True(t, ok, p.Name)
		a, _ := p.T.Float32s()
		b, _ := q.T.Float32s()
		require.Equal(t, a, b, p.Name)
	}
	require.NoError(t, m.Close())
	require.ErrorContains(t, m.Save(dir), "closed")
}
