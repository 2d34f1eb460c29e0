package unet

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// testDevice is the device the tests run on (cuda under -tags cuda).
func loadCase(t *testing.T, s *torch.Scope, name string, dev torch.Device) map[string]*torch.Tensor {
	t.Helper()
	ts, err := torch.LoadFile(s, fixture.Path("io", name+".safetensors"), dev)
	require.NoError(t, err)
	return ts
}

func TestParityUNet(t *testing.T) { parityUNet(t) }

// The channels-last UNet (the CUDA default) against the fixture on any
// device, with GroupNorm's split statistics reading the layout in place.
func TestParityUNetChannelsLast(t *testing.T) {
	restore, err := torch.ChannelsLastEverywhere()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, restore()) })
	parityUNet(t)
}

// With LayerNorm as the bridge's fused kernel (torch.SetFusedLayerNorm)
// the UNet still meets the fixture. On CUDA with the kernels built, the
// forward must launch more fused kernels than it does with the setting
// off (the LayerNorms'); elsewhere the setting has no kernel to run, and
// the test is TestParityUNet's.
func TestParityUNetFusedLayerNorm(t *testing.T) {
	t.Cleanup(func() { require.NoError(t, torch.SetFusedLayerNorm(false)) })
	var launches [2]int64
	for i, on := range []bool{false, true} {
		require.NoError(t, torch.SetFusedLayerNorm(on))
		before := torch.FusedKernelLaunches()
		parityUNet(t)
		launches[i] = torch.FusedKernelLaunches() - before
	}
	if testDevice.CUDA && torch.FusedKernelsBuilt() {
		require.Greater(t, launches[1], launches[0], "fused kernel launches with LayerNorm off, on")
	}
}

func parityUNet(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	m, err := Load(fixture.Path("pipeline", "unet"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	s := torch.NewScope()
	defer s.Close()
	in := loadCase(t, s, "unet", testDevice)
	var err2 error
	var got *torch.Tensor
	func() {
		defer torch.Recover(&err2)
		got = m.Apply(s, in["sample"], in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
	}()
	require.NoError(t, err2)
	require.Equal(t, in["out"].Shape(), got.Shape())
	g, err := got.Float32s()
	require.NoError(t, err)
	w, err := in["out"].Float32s()
	require.NoError(t, err)
	rel, err := fixture.RelL2(g, w)
	require.NoError(t, err)
	t.Logf("unet %v on %s: relative L2 error %.3g", got.Shape(), testDevice, rel)
	require.LessOrEqual(t, rel, 1e-4)
}
