package discriminator

import (
	"math"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// block is StyleGAN-T's discriminator block: a spectrally normalised
// convolution, GroupNorm (our choice where StyleGAN-T has a local batch
// norm), LeakyReLU.
type block struct {
	conv  *snConv
	norm  *nn.GroupNorm
	slope float64
}

func newBlock(ps *torch.Params, path string, in, out int64, kernel []int64, cfg Config) *block {
	return &block{
		conv:  newSNConv(ps, path+".conv", in, out, kernel),
		norm:  nn.NewGroupNorm(ps, path+".norm", cfg.NormGroups, out, cfg.NormEps),
		slope: cfg.LeakySlope,
	}
}

func (b *block) forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	return c.Keep(c.LeakyReLU(b.norm.Forward(c, b.conv.forward(c, x, train)), b.slope))
}

// head maps features [N, C, spatial...] to one logit per position
// [N, 1, spatial...], with convolutions of the spatial rank (2 for the
// spatial heads, 1 for the temporal ones):
//
//	h = block_in(x)                  1×…×1 convolution C → head channels
//	h = (block_res(h) + h) / √2      k×…×k convolution, StyleGAN-T's residual
//	logits = conv_out(h)             1×…×1 convolution to one channel
//
// Every convolution is spectrally normalised; zero padding keeps the size.
type head struct {
	path    string
	in, res *block
	out     *snConv
}

func newHead(ps *torch.Params, path string, channels, rank int64, cfg Config) *head {
	ones := make([]int64, rank)
	ks := make([]int64, rank)
	for i := range ones {
		ones[i], ks[i] = 1, cfg.Kernel
	}
	h := cfg.HeadChannels
	return &head{
		path: path,
		in:   newBlock(ps, path+".block_in", channels, h, ones, cfg),
		res:  newBlock(ps, path+".block_res", h, h, ks, cfg),
		out:  newSNConv(ps, path+".conv_out", h, 1, ones),
	}
}

func (h *head) forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	defer torch.Annotate(h.path)
	c := s.Child()
	defer c.Close()
	y := h.in.forward(c, x, train)
	r := h.res.forward(c, y, train)
	y = c.MulScalar(c.Add(r, y), 1/math.Sqrt2)
	c.Drop(r)
	return c.Keep(h.out.forward(c, y, train))
}

// snConvs lists the head's spectrally normalised convolutions.
func (h *head) snConvs() []*snConv { return []*snConv{h.in.conv, h.res.conv, h.out} }
