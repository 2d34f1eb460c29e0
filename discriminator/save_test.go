package discriminator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

func logitValues(t *testing.T, d *Discriminator, x *torch.Tensor) [][]float32 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	var logits []*torch.Tensor
	require.NoError(t, apply(func() { logits = d.Apply(s, x) }))
	out := make([][]float32, len(logits))
	for i, l := range logits {
		v, err := l.Float32s()
		require.NoError(t, err)
		out[i] = v
	}
	return out
}

// Save then Load gives the same discriminator: the same config, the same
// parameters and u vectors, hence the same logits.
func TestSaveLoad(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{HeadChannels: 16, Layers: []int{1, 3}})
	s := torch.NewScope()
	defer s.Close()
	x := randn(t, s, 11, 1, 2, 4, 8, 8)
	d.SetTraining(true)
	logitValues(t, d, x) // moves the u vectors away from their initial values
	d.SetTraining(false)
	want := logitValues(t, d, x)

	path := filepath.Join(t.TempDir(), "discriminator.safetensors")
	require.NoError(t, d.Save(path))
	start := torch.Live()
	e, err := Load(b, path)
	require.NoError(t, err)
	require.Equal(t, d.Config, e.Config)
	require.True(t, e.Training())
	e.SetTraining(false)
	require.Equal(t, want, logitValues(t, e, x))
	require.Len(t, e.Trainable(), len(d.Trainable()))
	for _, p := range e.Trainable() {
		require.True(t, p.T.RequiresGrad(), p.Name)
	}
	require.Equal(t, d.NumParams(), e.NumParams())
	require.NoError(t, e.Close())
	require.Equal(t, start, torch.Live())

	// Files that do not hold a discriminator, or not one for this backbone.
	other := filepath.Join(t.TempDir(), "plain.safetensors")
	ws := map[string]*torch.Tensor{"x": x}
	require.NoError(t, torch.SaveFile(other, ws, nil))
	_, err = Load(b, other)
	require.ErrorContains(t, err, "not written by Save")
	_, err = Load(b, filepath.Join(t.TempDir(), "missing.safetensors"))
	require.ErrorContains(t, err, "missing.safetensors")

	wide, err := NewBackbone(BackboneConfig{
		HiddenSize: 48, NumHiddenLayers: 4, NumAttentionHeads: 4, MLPRatio: 4, HiddenAct: GELU,
		LayerNormEps: 1e-6, ImageSize: 32, PatchSize: 4, NumChannels: 3, QKVBias: true, LayerscaleValue: 1,
	}, WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer wide.Close()
	_, err = Load(wide, path)
	require.ErrorContains(t, err, "mis-shaped keys")
	shallow, err := NewBackbone(BackboneConfig{
		HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4, MLPRatio: 4, HiddenAct: GELU,
		LayerNormEps: 1e-6, ImageSize: 32, PatchSize: 4, NumChannels: 3, QKVBias: true, LayerscaleValue: 1,
	}, WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer shallow.Close()
	_, err = Load(shallow, path)
	require.ErrorContains(t, err, "layers[1] = 3 is out of range")

	require.NoError(t, d.Close())
	require.ErrorIs(t, d.Save(path), errClosed)
	_, err = os.Stat(path)
	require.NoError(t, err)
}
