package vae

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// vaeCases are the io/ cases of the temporal VAE: vae (the pipeline's
// VAE) and vae_l2 (layers_per_block 2, as SVD's own VAE: the decoder's
// mid-block attention runs).
var vaeCases = []string{"vae", "vae_l2"}

// vaeCase is io/<name>: its tensors on the test device, its scalar args
// and its model folder.
type vaeCase struct {
	in        map[string]*torch.Tensor
	numFrames int
	model     string
}

func loadCase(t *testing.T, s *torch.Scope, name string) vaeCase {
	t.Helper()
	ts, err := torch.LoadFile(s, fixture.Path("io", name+".safetensors"), testDevice)
	require.NoError(t, err)
	var args struct {
		DecodeNumFrames int    `json:"decode_num_frames"`
		Model           string `json:"model"`
	}
	require.NoError(t, fixture.JSON(name, &args))
	require.Positive(t, args.DecodeNumFrames, "io/%s.json: decode_num_frames", name)
	if args.Model == "" {
		args.Model = "pipeline/vae"
	}
	return vaeCase{in: ts, numFrames: args.DecodeNumFrames, model: fixture.Path(args.Model)}
}

// loadModel loads the VAE of a case's model folder onto the test device.
func loadModel(t *testing.T, tc vaeCase) *Model {
	t.Helper()
	m, err := Load(tc.model, WithDevice(testDevice.String()))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// run calls f, turning an engine panic into a test failure.
func run(t *testing.T, f func()) {
	t.Helper()
	var err error
	func() {
		defer torch.Recover(&err)
		f()
	}()
	require.NoError(t, err)
}

// relErr is the relative L2 error of got against want, shapes equal.
func relErr(t *testing.T, got, want *torch.Tensor) float64 {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape())
	g, err := got.Float32s()
	require.NoError(t, err)
	w, err := want.Float32s()
	require.NoError(t, err)
	rel, err := fixture.RelL2(g, w)
	require.NoError(t, err)
	return rel
}

func TestParityVAE(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	for _, name := range vaeCases {
		t.Run(name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			tc := loadCase(t, s, name)
			m := loadModel(t, tc)
			in := tc.in
			t.Logf("io/%s: %s, %d layers per block", name, tc.model, m.Config.LayersPerBlock)

			var mean, logvar, dec *torch.Tensor
			run(t, func() {
				mean, logvar = m.EncodeApply(s, in["encode_in"])
				dec = m.DecodeApply(s, in["decode_in"], tc.numFrames, int(in["decode_in"].Size(0)))
			})
			for _, c := range []struct {
				name      string
				got, want *torch.Tensor
			}{
				{"encode_mean", mean, in["encode_mean"]},
				{"encode_logvar", logvar, in["encode_logvar"]},
				{"decode_out", dec, in["decode_out"]},
			} {
				rel := relErr(t, c.got, c.want)
				t.Logf("%s %s %v on %s: relative L2 error %.3g", name, c.name, c.got.Shape(), testDevice, rel)
				require.LessOrEqual(t, rel, 1e-4, c.name)
			}
		})
	}
}

// The channels-last decoder (the CUDA default) against the fixture on any
// device, with GroupNorm's split statistics reading the layout directly.
func TestParityDecodeChannelsLast(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	restore, err := torch.ChannelsLastEverywhere()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, restore()) })
	for _, name := range vaeCases {
		t.Run(name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			tc := loadCase(t, s, name)
			m := loadModel(t, tc)
			var dec *torch.Tensor
			run(t, func() { dec = m.DecodeApply(s, tc.in["decode_in"], tc.numFrames, int(tc.in["decode_in"].Size(0))) })
			rel := relErr(t, dec, tc.in["decode_out"])
			t.Logf("%s channels-last decode %v on %s: relative L2 error %.3g", name, dec.Shape(), testDevice, rel)
			require.LessOrEqual(t, rel, 1e-4)
			require.Equal(t, contiguousStrides(dec.Shape()), dec.Strides(), "the decoder returns the default layout")
		})
	}
}

func contiguousStrides(shape []int64) []int64 {
	st := make([]int64, len(shape))
	acc := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= shape[i]
	}
	return st
}
