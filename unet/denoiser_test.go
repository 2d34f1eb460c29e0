package unet

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// The denoiser must combine the UNet's output with the EDM coefficients of
// each sample's own σ, and reduce to the identity as σ → 0.
func TestDenoiserPreconditioning(t *testing.T) {
	m, err := Load(fixture.Path("pipeline", "unet"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer m.Close()
	s := torch.NewScope()
	defer s.Close()
	in := loadCase(t, s, "unet", testDevice)
	shape := in["sample"].Shape() // [B, F, 8, h, w]: latents ‖ image latents
	b := shape[0]
	lat := shape[2] / 2
	x := s.Contiguous(s.Slice(in["sample"], 2, 0, lat))
	z := s.Contiguous(s.Slice(in["sample"], 2, lat, shape[2]))
	cond := Cond{ImageLatents: z, ImageEmbeds: in["encoder_hidden_states"], AddedTimeIDs: in["added_time_ids"]}
	d := &Denoiser{UNet: m}

	sigmas := make([]float32, b)
	for i := range sigmas {
		sigmas[i] = 0.7 + 4*float32(i)
	}
	sig, err := torch.FromFloat32(s, sigmas, []int64{b}, torch.Float32, testDevice)
	require.NoError(t, err)

	var got, v *torch.Tensor
	var ferr error
	func() {
		defer torch.Recover(&ferr)
		got = d.Apply(s, x, sig, cond)
		// The same UNet call by hand.
		cin := make([]float32, b)
		cnoise := make([]float32, b)
		for i, sg := range sigmas {
			cin[i] = float32(1 / math.Sqrt(float64(sg*sg+1)))
			cnoise[i] = float32(0.25 * math.Log(float64(sg)))
		}
		cinT, _ := torch.FromFloat32(s, cin, []int64{b, 1, 1, 1, 1}, torch.Float32, testDevice)
		cnT, _ := torch.FromFloat32(s, cnoise, []int64{b}, torch.Float32, testDevice)
		v = m.Apply(s, s.Cat(2, s.Mul(x, cinT), z), cnT, cond.ImageEmbeds, cond.AddedTimeIDs)
	}()
	require.NoError(t, ferr)
	require.Equal(t, x.Shape(), got.Shape())

	xs, _ := x.Float32s()
	vs, _ := v.Float32s()
	gs, _ := got.Float32s()
	per := int(int64(len(xs)) / b)
	want := make([]float32, len(xs))
	for i := range want {
		sg := float64(sigmas[i/per])
		want[i] = float32(float64(xs[i])/(sg*sg+1) - sg/math.Sqrt(sg*sg+1)*float64(vs[i]))
	}
	rel, err := fixture.RelL2(gs, want)
	require.NoError(t, err)
	require.Less(t, rel, 1e-5, "denoiser against the EDM formula")

	// σ → 0: D(x; σ) → x.
	tiny, _ := torch.Full(s, []int64{b}, 1e-5, torch.Float32, testDevice)
	var near *torch.Tensor
	func() {
		defer torch.Recover(&ferr)
		near = d.Apply(s, x, tiny, cond)
	}()
	require.NoError(t, ferr)
	ns, _ := near.Float32s()
	rel, err = fixture.RelL2(ns, xs)
	require.NoError(t, err)
	require.Less(t, rel, 1e-4, "D(x; σ→0) should be x")
}
