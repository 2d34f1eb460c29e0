package osv

import (
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// GuidedDenoiser is SVD's conditioned denoiser over u for a batch's
// conditioning, for the solver package's samplers and solvers (the
// unconditional branch sees zeros in place of the image latent and the
// embedding; both branches run as one call on a doubled batch). u is used
// as it is at each call: with its LoRA adapters, if any are enabled.
func GuidedDenoiser(u *unet.Model, b Batch) solver.PairDenoiser {
	return &guidedDenoiser{d: &unet.Denoiser{UNet: u}, z: b.ImageLatents, emb: b.ImageEmbeds, ids: b.AddedTimeIDs}
}

// guidedDenoiser is SVD's conditioned denoiser for the samplers: the
// conditional branch sees the image latent z, the image embedding and the
// time ids; the unconditional branch sees zeros in place of z and the
// embedding (diffusers' negative conditioning). Both branches run as one
// UNet call on a doubled batch.
type guidedDenoiser struct {
	d           *unet.Denoiser
	z, emb, ids *torch.Tensor // [B, C, h, w], [B, 1, D], [B, n]
}

func (g *guidedDenoiser) cond(s *torch.Scope, on bool) unet.Cond {
	if on {
		return unet.Cond{ImageLatents: g.z, ImageEmbeds: g.emb, AddedTimeIDs: g.ids}
	}
	return unet.Cond{ImageLatents: s.Filled(g.z, 0, g.z.Shape()...), ImageEmbeds: s.Filled(g.emb, 0, g.emb.Shape()...), AddedTimeIDs: g.ids}
}

// Denoise evaluates one branch.
func (g *guidedDenoiser) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	return c.Keep(g.d.Apply(c, x, sigma, g.cond(c, cond)))
}

// DenoisePair evaluates both branches in one call of batch 2B.
func (g *guidedDenoiser) DenoisePair(s *torch.Scope, x, sigma *torch.Tensor) (uncond, cond *torch.Tensor) {
	c := s.Child()
	defer c.Close()
	u, k := g.cond(c, false), g.cond(c, true)
	both := unet.Cond{
		ImageLatents: c.Cat(0, u.ImageLatents, k.ImageLatents),
		ImageEmbeds:  c.Cat(0, u.ImageEmbeds, k.ImageEmbeds),
		AddedTimeIDs: c.Cat(0, u.AddedTimeIDs, k.AddedTimeIDs),
	}
	b := x.Size(0)
	sg := c.Expand(c.Reshape(sigma, -1), b)
	d := g.d.Apply(c, c.Cat(0, x, x), c.Cat(0, sg, sg), both)
	return c.Keep(c.Slice(d, 0, 0, b)), c.Keep(c.Slice(d, 0, b, 2*b))
}
