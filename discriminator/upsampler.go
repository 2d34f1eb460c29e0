package discriminator

import (
	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// upsampler turns latents into backbone input: a 3×3 convolution from the
// latent channels to channels·r², PixelShuffle(r), then a bilinear resize
// (align_corners false) to the nearest multiple of the patch size.
type upsampler struct {
	conv  *nn.Conv // upsampler.conv
	r     int64
	patch int64
}

func newUpsampler(ps *torch.Params, latent, channels, r, patch int64) *upsampler {
	return &upsampler{conv: nn.NewConv2d(ps, "upsampler.conv", latent, channels*r*r, 3, 1, 1), r: r, patch: patch}
}

func (u *upsampler) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate("upsampler")
	c := s.Child()
	defer c.Close()
	y := c.PixelShuffle(u.conv.Forward(c, x), u.r)
	return c.Keep(fitPatches(c, y, u.patch))
}

// nearestMultiple is the multiple of p nearest to n (halves round up),
// at least p.
func nearestMultiple(n, p int64) int64 { return max((n+p/2)/p, 1) * p }

// fitPatches resizes x [N, C, H, W] bilinearly to the nearest multiples of
// the patch size, or returns it when it already fits.
func fitPatches(s *torch.Scope, x *torch.Tensor, patch int64) *torch.Tensor {
	h, w := x.Size(2), x.Size(3)
	th, tw := nearestMultiple(h, patch), nearestMultiple(w, patch)
	if th == h && tw == w {
		return x
	}
	return s.Interpolate(x, torch.Bilinear, th, tw, false, false)
}
