package clip

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// loadCase reads io/<name>.safetensors onto dev.
func loadCase(t *testing.T, s *torch.Scope, name string, dev torch.Device) map[string]*torch.Tensor {
	t.Helper()
	ts, err := torch.LoadFile(s, fixture.Path("io", name+".safetensors"), dev)
	require.NoError(t, err)
	return ts
}

// imageFromU8 turns an image [H, W, C] of bytes into [1, C, H, W] float32
// in [0, 1], as the pipeline's PIL → numpy → tensor conversion does.
func imageFromU8(s *torch.Scope, u8 *torch.Tensor) *torch.Tensor {
	x := s.Cast(u8, torch.Float32)
	x = s.Div(x, s.Scalar(x, 255))
	x = s.Contiguous(s.Permute(x, 2, 0, 1))
	return s.Reshape(x, append([]int64{1}, x.Shape()...)...)
}

// compare checks got against the fixture's tensor want and logs the error.
func compare(t *testing.T, what string, got, want *torch.Tensor) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), what)
	g, err := got.Float32s()
	require.NoError(t, err)
	w, err := want.Float32s()
	require.NoError(t, err)
	rel, err := fixture.RelL2(g, w)
	require.NoError(t, err)
	t.Logf("%s %v on %s: relative L2 error %.3g", what, got.Shape(), testDevice, rel)
	require.LessOrEqual(t, rel, 1e-4, what)
}

// clipCases are the io/ cases of SVD's preprocessing and the image
// encoder: clip, an image smaller than the encoder's input (the blur is
// the identity), and clip_large, larger in both directions (the blur runs).
var clipCases = []string{"clip", "clip_large"}

// caseModel is the model folder an io/<name>.json names ("model"), by
// default the pipeline's image encoder.
func caseModel(t *testing.T, name string) string {
	t.Helper()
	var c struct {
		Model string `json:"model"`
	}
	require.NoError(t, fixture.JSON(name, &c))
	if c.Model == "" {
		c.Model = "pipeline/image_encoder"
	}
	return fixture.Path(c.Model)
}

func TestParityCLIP(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	p, err := LoadPreprocessor(fixture.Path("pipeline", "feature_extractor"))
	require.NoError(t, err)
	for _, name := range clipCases {
		t.Run(name, func(t *testing.T) {
			m, err := Load(caseModel(t, name), WithDevice(testDevice.String()))
			require.NoError(t, err)
			defer m.Close()
			s := torch.NewScope()
			defer s.Close()
			in := loadCase(t, s, name, testDevice)
			img := in["image_u8"].Shape()
			require.Len(t, img, 3, "io/%s: image_u8 [H, W, 3]", name)
			tx, ty := blurTaps(img[1], p.Width), blurTaps(img[0], p.Height)
			t.Logf("io/%s: a %d×%d image, blur taps %d × %d", name, img[1], img[0], len(tx), len(ty))
			if name == "clip_large" {
				// The case exists for the blur: it must be larger than the
				// encoder's input both ways, and the blur not the identity.
				require.Greater(t, img[0], p.Height, "io/clip_large: height")
				require.Greater(t, img[1], p.Width, "io/clip_large: width")
				require.Less(t, tx[len(tx)/2], float32(0.99), "io/clip_large: the width's blur is not the identity")
				require.Less(t, ty[len(ty)/2], float32(0.99), "io/clip_large: the height's blur is not the identity")
			}

			var resized, pixels, embeds, pixelsAlone, embedsAlone *torch.Tensor
			func() {
				defer torch.Recover(&err)
				// The chain, as the pipeline runs it.
				resized = p.ResizeApply(s, imageFromU8(s, in["image_u8"]))
				pixels = p.NormalizeApply(s, resized)
				embeds = m.Apply(s, pixels)
				// Each stage alone, on the reference's own input to it.
				pixelsAlone = p.NormalizeApply(s, in["resized"])
				embedsAlone = m.Apply(s, in["pixel_values"])
			}()
			require.NoError(t, err)
			compare(t, "resized", resized, in["resized"])
			compare(t, "pixel_values", pixels, in["pixel_values"])
			compare(t, "image_embeds", embeds, in["image_embeds"])
			compare(t, "pixel_values from the reference's resized", pixelsAlone, in["pixel_values"])
			compare(t, "image_embeds from the reference's pixel_values", embedsAlone, in["image_embeds"])
		})
	}
}
