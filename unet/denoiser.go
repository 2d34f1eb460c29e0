package unet

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// Denoiser is SVD's EDM preconditioning around the UNet F (σ_data = 1):
//
//	c_in = 1/√(σ²+1)   c_skip = 1/(σ²+1)   c_out = −σ/√(σ²+1)   c_noise = ¼·ln σ
//	D(x; σ) = c_skip·x + c_out·F([c_in·x ‖ z_img], c_noise, e_img, ids)
//
// The coefficients and the result are computed in float32 (the UNet runs in
// its own dtype); D has x's dtype.
type Denoiser struct {
	UNet *Model
}

// Conditioning is what SVD's UNet is conditioned on. The unconditional
// branch of classifier-free guidance is zero image latents and embeddings.
type Conditioning struct {
	// ImageLatents is z_img, the VAE latent (mode, unscaled) of the noise-
	// augmented conditioning image: [B, 4, h, w] (repeated over the frames)
	// or [B, F, 4, h, w]. Concatenated to the input's channels.
	ImageLatents gotorch.Tensor
	// ImageEmbeds is e_img, CLIP's image_embeds: [B, 1, D].
	ImageEmbeds gotorch.Tensor
	// AddedTimeIDs is [B, 3]: fps − 1, motion bucket id, noise augmentation strength.
	AddedTimeIDs gotorch.Tensor
}

// Cond is Conditioning on engine tensors, for the module's own packages.
type Cond struct {
	ImageLatents, ImageEmbeds, AddedTimeIDs *torch.Tensor
}

// Denoise returns D(x; σ) for noisy latents x [B, F, C, h, w] at noise
// levels sigma ([B] or a scalar, σ > 0), owned by the caller.
func (d *Denoiser) Denoise(x, sigma gotorch.Tensor, c Conditioning) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if d == nil || d.UNet.Closed() {
		return gotorch.Tensor{}, errClosed
	}
	s := torch.NewScope()
	defer s.Close()
	in, err := imports(s, map[string]gotorch.Tensor{
		"x": x, "sigma": sigma, "image_latents": c.ImageLatents, "image_embeds": c.ImageEmbeds, "added_time_ids": c.AddedTimeIDs,
	})
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("denoiser: %w", err)
	}
	y := d.Apply(s, in["x"], in["sigma"], Cond{in["image_latents"], in["image_embeds"], in["added_time_ids"]})
	return torch.ToGotorch(y)
}

// Apply is Denoise on engine tensors, for the module's own packages; it
// panics with *torch.Error.
func (d *Denoiser) Apply(s *torch.Scope, x, sigma *torch.Tensor, cond Cond) *torch.Tensor {
	defer torch.Annotate("denoiser")
	c := s.Child()
	defer c.Close()
	if x.Dim() != 5 {
		torch.Failf("denoiser", "x: shape %v, want [batch, frames, channels, height, width]", x.Shape())
	}
	b, f := x.Size(0), x.Size(1)
	if n := sigma.Numel(); n != 1 && n != b {
		torch.Failf("denoiser", "sigma: shape %v, want [] or [%d]", sigma.Shape(), b)
	}
	sg := c.Expand(c.Reshape(c.Cast(sigma, torch.Float32), -1), b) // [B]
	s2 := c.AddScalar(c.Square(sg), 1)
	cIn := c.Rsqrt(s2)
	cSkip := c.RDiv(1, s2)
	cOut := c.Neg(c.Mul(sg, cIn))
	cNoise := c.MulScalar(c.Log(sg), 0.25)
	col := func(t *torch.Tensor) *torch.Tensor { return c.Reshape(t, b, 1, 1, 1, 1) }

	xf := c.Cast(x, torch.Float32)
	in := c.Mul(xf, col(cIn))
	if z := cond.ImageLatents; z != nil {
		switch {
		case z.Dim() == 4 && z.Size(0) == b:
			z = c.Expand(c.Reshape(z, b, 1, z.Size(1), z.Size(2), z.Size(3)), b, f, z.Size(1), z.Size(2), z.Size(3))
		case z.Dim() == 5 && z.Size(0) == b && z.Size(1) == f:
		default:
			torch.Failf("denoiser", "image_latents: shape %v, want [%d, C, h, w] or [%d, %d, C, h, w]", z.Shape(), b, b, f)
		}
		in = c.Cat(2, in, c.Cast(z, torch.Float32))
	}
	v := d.UNet.Apply(c, in, cNoise, cond.ImageEmbeds, cond.AddedTimeIDs)
	out := c.Add(c.Mul(xf, col(cSkip)), c.Mul(c.Cast(v, torch.Float32), col(cOut)))
	return c.Keep(c.Cast(out, x.DType()))
}
