package vae

import (
	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// encoder is diffusers' Encoder with double_z: conv_in, DownEncoderBlock2D
// blocks, UNetMidBlock2D, then GroupNorm, SiLU and conv_out to twice the
// latent channels (mean and log-variance).
type encoder struct {
	convIn  *nn.Conv
	down    []*downEncoderBlock
	mid     *midBlock2D
	normOut *nn.GroupNorm
	convOut *nn.Conv
}

// eps is the GroupNorm eps of every spatial norm in the VAE.
const eps = 1e-6

func newEncoder(ps *torch.Params, cfg Config) *encoder {
	ch := cfg.BlockOutChannels
	last := ch[len(ch)-1]
	e := &encoder{convIn: nn.NewConv2d(ps, "encoder.conv_in", cfg.InChannels, ch[0], 3, 1, 1)}
	out := ch[0]
	for i := range ch {
		in := out
		out = ch[i]
		path := "encoder.down_blocks." + itoa(i)
		b := &downEncoderBlock{path: path}
		for j := range cfg.LayersPerBlock {
			rin := out
			if j == 0 {
				rin = in
			}
			b.resnets = append(b.resnets, nn.NewResnetBlock2D(ps, path+".resnets."+itoa(j), rin, out, 0, groups, eps))
		}
		if i < len(ch)-1 {
			b.downsampler = nn.NewConv2d(ps, path+".downsamplers.0.conv", out, out, 3, 2, 0)
		}
		e.down = append(e.down, b)
	}
	e.mid = &midBlock2D{
		path:   "encoder.mid_block",
		first:  nn.NewResnetBlock2D(ps, "encoder.mid_block.resnets.0", last, last, 0, groups, eps),
		attn:   newAttention(ps, "encoder.mid_block.attentions.0", last, last, eps),
		second: nn.NewResnetBlock2D(ps, "encoder.mid_block.resnets.1", last, last, 0, groups, eps),
	}
	e.normOut = nn.NewGroupNorm(ps, "encoder.conv_norm_out", groups, last, eps)
	e.convOut = nn.NewConv2d(ps, "encoder.conv_out", last, 2*cfg.LatentChannels, 3, 1, 1)
	return e
}

// forward maps images [N, C, H, W] to moments [N, 2·latent, H/d, W/d].
func (e *encoder) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate("encoder")
	c := s.Child()
	defer c.Close()
	x = e.convIn.Forward(c, x)
	for _, b := range e.down {
		y := b.forward(c, x)
		c.Drop(x)
		x = y
	}
	y := e.mid.forward(c, x)
	c.Drop(x)
	return c.Keep(e.convOut.Forward(c, e.normOut.ForwardAct(c, y, nil, true)))
}

// downEncoderBlock is DownEncoderBlock2D: residual blocks without a time
// embedding, then (but in the last block) a stride-2 convolution after
// zero padding of one row at the bottom and one column at the right.
type downEncoderBlock struct {
	path        string
	resnets     []*nn.ResnetBlock2D
	downsampler *nn.Conv
}

func (b *downEncoderBlock) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	for _, r := range b.resnets {
		y := r.Forward(c, x, nil)
		c.Drop(x)
		x = y
	}
	if b.downsampler != nil {
		p := c.Pad(x, torch.PadConstant, 0, 0, 1, 0, 1)
		c.Drop(x)
		x = b.downsampler.Forward(c, p)
		c.Drop(p)
	}
	return c.Keep(x)
}

// midBlock2D is UNetMidBlock2D with one layer: resnet, attention, resnet.
type midBlock2D struct {
	path          string
	first, second *nn.ResnetBlock2D
	attn          *attention
}

func (b *midBlock2D) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	h := b.first.Forward(c, x, nil)
	a := b.attn.forward(c, h)
	c.Drop(h)
	return c.Keep(b.second.Forward(c, a, nil))
}
