package vae

import (
	"slices"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// temporalDecoder is diffusers' TemporalDecoder: conv_in, a middle block
// and up blocks of spatio-temporal residual blocks, GroupNorm, SiLU,
// conv_out, then time_conv_out, a (3, 1, 1) convolution across frames.
type temporalDecoder struct {
	convIn      *nn.Conv
	mid         *midBlockTemporal
	up          []*upBlockTemporal
	normOut     *nn.GroupNorm
	convOut     *nn.Conv
	timeConvOut *nn.Conv
}

// stOptions are the decoder's residual block settings: spatial eps 1e-6,
// temporal eps 1e-5, learned mix factor starting at 0 and switched, so that
// the blend is σ(mix)·temporal + (1−σ(mix))·spatial.
var stOptions = nn.SpatioTemporalOptions{Groups: groups, Eps: eps, TemporalEps: 1e-5, MergeFactor: 0, Switch: true}

func newTemporalDecoder(ps *torch.Params, cfg Config) *temporalDecoder {
	ch := cfg.BlockOutChannels
	last := ch[len(ch)-1]
	d := &temporalDecoder{convIn: nn.NewConv2d(ps, "decoder.conv_in", cfg.LatentChannels, last, 3, 1, 1)}

	d.mid = &midBlockTemporal{path: "decoder.mid_block"}
	for j := range cfg.LayersPerBlock {
		d.mid.resnets = append(d.mid.resnets,
			nn.NewSpatioTemporalResBlock(ps, "decoder.mid_block.resnets."+itoa(j), last, last, 0, stOptions))
	}
	d.mid.attn = newAttention(ps, "decoder.mid_block.attentions.0", last, last, eps)

	rev := slices.Clone(ch)
	slices.Reverse(rev)
	out := rev[0]
	for i := range rev {
		in := out
		out = rev[i]
		path := "decoder.up_blocks." + itoa(i)
		b := &upBlockTemporal{path: path}
		for j := range cfg.LayersPerBlock + 1 {
			rin := out
			if j == 0 {
				rin = in
			}
			b.resnets = append(b.resnets, nn.NewSpatioTemporalResBlock(ps, path+".resnets."+itoa(j), rin, out, 0, stOptions))
		}
		if i < len(rev)-1 {
			b.upsampler = nn.NewConv2d(ps, path+".upsamplers.0.conv", out, out, 3, 1, 1)
		}
		d.up = append(d.up, b)
	}
	d.normOut = nn.NewGroupNorm(ps, "decoder.conv_norm_out", groups, ch[0], eps)
	d.convOut = nn.NewConv2d(ps, "decoder.conv_out", ch[0], cfg.OutChannels, 3, 1, 1)
	d.timeConvOut = nn.NewConv(ps, "decoder.time_conv_out", cfg.OutChannels, cfg.OutChannels, []int64{3, 1, 1},
		nn.ConvOptions{Padding: []int64{1, 0, 0}})
	return d
}

// forward decodes z [B·F, latent, h, w], clips of frames consecutive
// frames, to [B·F, out, h·d, w·d]. Where torch.ChannelsLastOn says so, the
// activations are channels-last throughout: the convolutions then need no
// layout transposes, and the temporal blocks' [B, C, F, H, W] views are
// already the NDHWC layout their (3, 1, 1) convolutions want.
func (d *temporalDecoder) forward(s *torch.Scope, z *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate("decoder")
	c := s.Child()
	defer c.Close()
	last := torch.ChannelsLastOn(z.Device())
	if last {
		z = c.ChannelsLast(z)
	}
	x := d.convIn.Forward(c, z)
	y := d.mid.forward(c, x, frames)
	c.Drop(x)
	x = y
	var xb *torch.Tensor // the bias each upsampler leaves to the next block
	for _, b := range d.up {
		y, yb := b.forward(c, x, xb, frames)
		c.Drop(x)
		x, xb = y, yb
	}
	a := d.normOut.ForwardAct(c, x, xb, true)
	c.Drop(x)
	x = d.convOut.Forward(c, a)
	c.Drop(a)

	bf, ch, h, w := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	clips := c.Permute(c.Reshape(x, bf/frames, frames, ch, h, w), 0, 2, 1, 3, 4) // [B, C, F, H, W]
	t := d.timeConvOut.Forward(c, clips)
	out := c.Reshape(c.Permute(t, 0, 2, 1, 3, 4), bf, ch, h, w)
	if last {
		out = c.Contiguous(out)
	}
	return c.Keep(out)
}

// midBlockTemporal is MidBlockTemporalDecoder: layers_per_block residual
// blocks and one attention. As in diffusers, the attention and the second
// residual block follow the first one; residual blocks beyond the second
// are built (their weights are in the checkpoint) but never run, and with
// one layer the attention does not run either.
type midBlockTemporal struct {
	path    string
	resnets []*nn.SpatioTemporalResBlock
	attn    *attention
}

func (b *midBlockTemporal) forward(s *torch.Scope, x *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	x = b.resnets[0].Forward(c, x, nil, frames)
	if len(b.resnets) > 1 {
		a := b.attn.forward(c, x)
		c.Drop(x)
		x = b.resnets[1].Forward(c, a, nil, frames)
		c.Drop(a)
	}
	return c.Keep(x)
}

// upBlockTemporal is UpBlockTemporalDecoder: spatio-temporal residual
// blocks (no skip connections), then (but in the last block) nearest ×2
// upsampling and a 3×3 convolution. Its input may lack a per-channel bias
// xb, and its output lacks the upsampler's bias, yb: the next block folds
// each into its first GroupNorm and residual sum.
type upBlockTemporal struct {
	path      string
	resnets   []*nn.SpatioTemporalResBlock
	upsampler *nn.Conv
}

func (b *upBlockTemporal) forward(s *torch.Scope, x, xb *torch.Tensor, frames int64) (y, yb *torch.Tensor) {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	for _, r := range b.resnets {
		y := r.ForwardBiased(c, x, xb, nil, frames)
		c.Drop(x)
		x, xb = y, nil
	}
	if b.upsampler != nil {
		u := c.UpsampleNearest(x, 2*x.Size(2), 2*x.Size(3))
		c.Drop(x)
		x, xb = b.upsampler.ForwardSplitBias(c, u)
		c.Drop(u)
	}
	if xb != nil {
		xb = c.Keep(xb)
	}
	return c.Keep(x), xb
}
