package unet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

func TestLoadStateDict(t *testing.T) {
	start := torch.Live()
	dir := fixture.Path("pipeline", "unet")
	cfg, err := ReadConfig(dir)
	require.NoError(t, err)
	file := filepath.Join(dir, "diffusion_pytorch_model.safetensors")

	// The folder's weights file is a bare state_dict: the same parameters.
	folder, err := Load(dir, WithDevice(testDevice.String()))
	require.NoError(t, err)
	single, err := LoadStateDict(cfg, file, WithDevice(testDevice.String()))
	require.NoError(t, err)
	require.Equal(t, folder.NumParams(), single.NumParams())
	for _, p := range folder.Params().List() {
		q, ok := single.Params().Get(p.Name)
		require.True(t, ok, p.Name)
		a, err := p.T.Float32s()
		require.NoError(t, err)
		b, err := q.T.Float32s()
		require.NoError(t, err)
		require.Equal(t, a, b, p.Name)
	}
	require.NoError(t, folder.Close())
	require.NoError(t, single.Close())

	// Another config: every mis-shaped key is listed, with the file.
	wide := cfg
	wide.InChannels = 12
	_, err = LoadStateDict(wide, file)
	require.ErrorContains(t, err, file)
	require.ErrorContains(t, err, "conv_in.weight: checkpoint [32 8 3 3], model [32 12 3 3]")
	require.NotContains(t, err.Error(), "\n")

	// The VAE's weights: missing and unexpected keys in one line.
	vae := fixture.Path("pipeline", "vae", "diffusion_pytorch_model.safetensors")
	_, err = LoadStateDict(cfg, vae)
	require.ErrorContains(t, err, vae)
	require.ErrorContains(t, err, "missing keys")
	require.ErrorContains(t, err, "unexpected keys")
	require.NotContains(t, err.Error(), "\n")

	// A folder, a missing file, a truncated one, an invalid config.
	_, err = LoadStateDict(cfg, dir)
	require.ErrorContains(t, err, "is a folder")
	_, err = LoadStateDict(cfg, filepath.Join(t.TempDir(), "none.safetensors"))
	require.ErrorContains(t, err, "none.safetensors")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	cut := filepath.Join(t.TempDir(), "cut.safetensors")
	require.NoError(t, os.WriteFile(cut, b[:len(b)/2], 0o644))
	_, err = LoadStateDict(cfg, cut)
	require.ErrorContains(t, err, cut)
	bad := cfg
	bad.BlockOutChannels = nil
	_, err = LoadStateDict(bad, file)
	require.ErrorContains(t, err, "block_out_channels")
	require.True(t, strings.HasPrefix(err.Error(), "unet: "+file), err.Error())
	require.Equal(t, start, torch.Live())
}
