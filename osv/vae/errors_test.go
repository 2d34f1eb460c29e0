package vae

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// vaeDir copies the fixture's VAE folder, config.json replaced by config
// when it is not empty and the weights by weights when not nil.
func vaeDir(t *testing.T, config string, weights []byte) string {
	t.Helper()
	dir := t.TempDir()
	cfg := []byte(config)
	if config == "" {
		var err error
		cfg, err = os.ReadFile(fixture.Path("pipeline", "vae", "config.json"))
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644))
	if weights == nil {
		var err error
		weights, err = os.ReadFile(fixture.Path("pipeline", "vae", "diffusion_pytorch_model.safetensors"))
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), weights, 0o644))
	return dir
}

func TestLoadRejectsBadInput(t *testing.T) {
	start := torch.Live()

	// The fixture's weights with one key renamed and one reshaped.
	s := torch.NewScope()
	ws, err := torch.LoadFile(s, fixture.Path("pipeline", "vae", "diffusion_pytorch_model.safetensors"), torch.CPU)
	require.NoError(t, err)
	ws["decoder.conv_in.weightx"] = ws["decoder.conv_in.weight"]
	delete(ws, "decoder.conv_in.weight")
	bias := ws["quant_conv.bias"]
	ws["quant_conv.bias"] = s.Reshape(bias, 2, bias.Size(0)/2)
	edited := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, torch.SaveFile(edited, ws, nil))
	s.Close()
	editedBytes, err := os.ReadFile(edited)
	require.NoError(t, err)
	fixtureBytes, err := os.ReadFile(fixture.Path("pipeline", "vae", "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)

	noConfig := t.TempDir()
	noWeights := vaeDir(t, "", nil)
	require.NoError(t, os.Remove(filepath.Join(noWeights, "diffusion_pytorch_model.safetensors")))
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o644))

	cases := []struct {
		name, dir string
		want      []string
	}{
		{"missing folder", filepath.Join(t.TempDir(), "nope"), []string{"vae", "nope", "no such file"}},
		{"a file, not a folder", notDir, []string{"is not a folder"}},
		{"missing config", noConfig, []string{"config.json", "no such file"}},
		{"config not JSON", vaeDir(t, "{", nil), []string{"config.json", "unexpected end of JSON input"}},
		{"channels not a multiple of 32", vaeDir(t, `{"block_out_channels": [30]}`, nil), []string{"config.json", "block_out_channels[0] = 30"}},
		{"unknown block type", vaeDir(t, `{"down_block_types": ["AttnDownEncoderBlock2D"]}`, nil), []string{"config.json", "AttnDownEncoderBlock2D"}},
		{"no weights", noWeights, []string{"holds no weights"}},
		{"truncated weights", vaeDir(t, "", fixtureBytes[:len(fixtureBytes)-100]), []string{"diffusion_pytorch_model.safetensors", "run past the end of the data region"}},
		{"missing, unexpected and mis-shaped keys", vaeDir(t, "", editedBytes), []string{
			"missing keys: decoder.conv_in.weight", "unexpected keys: decoder.conv_in.weightx", "quant_conv.bias: checkpoint [2 4], model [8]"}},
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
	_, err = Load(fixture.Path("pipeline", "vae"), WithDevice("tpu:0"))
	require.ErrorContains(t, err, "tpu:0")
	_, err = Load(fixture.Path("pipeline", "vae"), WithDType("int64"))
	require.ErrorContains(t, err, "int64")
	_, err = New(Config{})
	require.ErrorContains(t, err, "block_out_channels")
	require.Equal(t, start, torch.Live(), "native tensors leaked by failed loads")
}

// inputs returns the fixture's VAE tensors as gotorch tensors (released by
// the test's cleanup) and the clip length.
func inputs(t *testing.T) (map[string]gotorch.Tensor, int) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	tc := loadCase(t, s, "vae")
	out := map[string]gotorch.Tensor{}
	for k, v := range tc.in {
		g, err := torch.ToGotorch(v)
		require.NoError(t, err)
		out[k] = g
		t.Cleanup(func() { torch.Release(g) })
	}
	return out, tc.numFrames
}

// derive makes a gotorch tensor from one of in's through f (released by
// the test's cleanup).
func derive(t *testing.T, g gotorch.Tensor, f func(s *torch.Scope, x *torch.Tensor) *torch.Tensor) gotorch.Tensor {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, g)
	require.NoError(t, err)
	var out gotorch.Tensor
	run(t, func() {
		out, err = torch.ToGotorch(s.Contiguous(f(s, x)))
	})
	require.NoError(t, err)
	t.Cleanup(func() { torch.Release(out) })
	return out
}

func TestEncodeDecodeLeakNothing(t *testing.T) {
	in, frames := inputs(t)
	start := torch.Live()
	m, err := Load(fixture.Path("pipeline", "vae"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	mean, logvar, err := m.Encode(in["encode_in"])
	require.NoError(t, err)
	require.Equal(t, in["encode_mean"].Shape(), mean.Shape())
	require.Equal(t, in["encode_logvar"].Shape(), logvar.Shape())
	n := int(in["decode_in"].Shape()[0])
	for _, chunk := range []int{1, n} {
		out, err := m.Decode(in["decode_in"], frames, chunk)
		require.NoError(t, err)
		require.Equal(t, in["decode_out"].Shape(), out.Shape())
		torch.Release(out)
	}
	torch.Release(mean, logvar)

	// Failed calls release everything they made.
	_, _, err = m.Encode(in["decode_in"])
	require.ErrorContains(t, err, "x: shape")
	_, err = m.Decode(in["encode_in"], 1, 1)
	require.ErrorContains(t, err, "z: shape")

	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	require.Equal(t, start, torch.Live(), "native tensors leaked by Load, Encode, Decode and Close")
	_, _, err = m.Encode(in["encode_in"])
	require.ErrorIs(t, err, errClosed)
	_, err = m.Decode(in["decode_in"], frames, n)
	require.ErrorIs(t, err, errClosed)
	require.Equal(t, start, torch.Live())
}

func TestEncodeDecodeRejectBadInputs(t *testing.T) {
	in, frames := inputs(t)
	m, err := Load(fixture.Path("pipeline", "vae"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	img, z := in["encode_in"], in["decode_in"]
	n := int(z.Shape()[0])
	d := m.Config.Downscale()

	twoChannels := derive(t, img, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Slice(x, 1, 0, 2) })
	intImage := derive(t, img, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Cast(x, torch.Int64) })
	flat := derive(t, img, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Reshape(x, -1) })
	ragged := derive(t, img, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		return s.Slice(x, 3, 0, x.Size(3)-d/2)
	})
	threeLatent := derive(t, z, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Slice(x, 1, 0, 3) })
	moreFrames := derive(t, z, func(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Cat(0, x, s.Slice(x, 0, 0, 1)) })

	type encodeCase struct {
		name string
		x    gotorch.Tensor
		want string
	}
	encodeCases := []encodeCase{
		{"two channels", twoChannels, "x: shape"},
		{"integer image", intImage, "x: dtype int64"},
		{"flat image", flat, "x: shape"},
		{"missing tensor", gotorch.Tensor{}, "x: nil"},
	}
	if d > 1 {
		encodeCases = append(encodeCases, encodeCase{"size not divisible", ragged, "must be divisible by"})
	}
	type decodeCase struct {
		name          string
		z             gotorch.Tensor
		frames, chunk int
		want          string
	}
	decodeCases := []decodeCase{
		{"three latent channels", threeLatent, frames, n, "z: shape"},
		{"zero frames", z, 0, n, "numFrames 0"},
		{"zero chunk", z, frames, 0, "chunk size 0"},
		{"image as latents", img, frames, n, "z: shape"},
		{"missing tensor", gotorch.Tensor{}, frames, n, "z: nil"},
		{"more frames than given", z, n + 1, n, "not a multiple of numFrames"},
	}
	if frames > 1 { // n+1 frames are then not whole clips
		decodeCases = append(decodeCases, decodeCase{"frames not a multiple", moreFrames, frames, n, "not a multiple of numFrames"})
	}

	start := torch.Live()
	for _, c := range encodeCases {
		t.Run("encode "+c.name, func(t *testing.T) {
			mean, logvar, err := m.Encode(c.x)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, mean.T)
			require.Nil(t, logvar.T)
			t.Log(err)
		})
	}
	for _, c := range decodeCases {
		t.Run("decode "+c.name, func(t *testing.T) {
			out, err := m.Decode(c.z, c.frames, c.chunk)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, out.T)
			t.Log(err)
		})
	}
	require.Equal(t, start, torch.Live(), "native tensors leaked by rejected calls")
}
