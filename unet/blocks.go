package unet

import (
	"strconv"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

func itoa[T ~int | ~int64](i T) string { return strconv.FormatInt(int64(i), 10) }

// downBlock is DownBlockSpatioTemporal, or CrossAttnDownBlockSpatioTemporal
// when it has attentions: resnets (each followed by its attention), then an
// optional stride-2 convolution.
type downBlock struct {
	path        string
	resnets     []*nn.SpatioTemporalResBlock
	attentions  []*transformerSpatioTemporal
	downsampler *nn.Conv
}

// forward returns the block's output and the skip tensors it produces, all
// owned by s; the intermediates between them are released on the way.
func (b *downBlock) forward(s *torch.Scope, x, temb, context *torch.Tensor, frames int64) (*torch.Tensor, []*torch.Tensor) {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	var skips []*torch.Tensor
	for i, r := range b.resnets {
		x = r.Forward(c, x, temb, frames)
		if b.attentions != nil {
			y := b.attentions[i].forward(c, x, context, frames)
			c.Drop(x)
			x = y
		}
		skips = append(skips, c.Keep(x))
	}
	if b.downsampler != nil {
		x = c.Keep(b.downsampler.Forward(c, x))
		skips = append(skips, x)
	}
	return x, skips
}

// upBlock is UpBlockSpatioTemporal, or CrossAttnUpBlockSpatioTemporal when
// it has attentions: each resnet takes the previous output concatenated
// with a skip tensor; then an optional nearest ×2 upsampling and conv.
type upBlock struct {
	path       string
	resnets    []*nn.SpatioTemporalResBlock
	attentions []*transformerSpatioTemporal
	upsampler  *nn.Conv
}

// forward takes the skip tensors it consumes (one per resnet, used from
// the last) and returns the block's output, owned by s.
func (b *upBlock) forward(s *torch.Scope, x *torch.Tensor, skips []*torch.Tensor, temb, context *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	for i, r := range b.resnets {
		cat := c.Cat(1, x, skips[len(skips)-1-i])
		c.Drop(x)
		x = r.Forward(c, cat, temb, frames)
		c.Drop(cat)
		if b.attentions != nil {
			y := b.attentions[i].forward(c, x, context, frames)
			c.Drop(x)
			x = y
		}
	}
	if b.upsampler != nil {
		u := c.UpsampleNearest(x, 2*x.Size(2), 2*x.Size(3))
		c.Drop(x)
		x = b.upsampler.Forward(c, u)
		c.Drop(u)
	}
	return c.Keep(x)
}

// midBlock is UNetMidBlockSpatioTemporal: resnet, then (attention, resnet)
// pairs.
type midBlock struct {
	path       string
	resnets    []*nn.SpatioTemporalResBlock
	attentions []*transformerSpatioTemporal
}

func (b *midBlock) forward(s *torch.Scope, x, temb, context *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	x = b.resnets[0].Forward(c, x, temb, frames)
	for i, a := range b.attentions {
		y := a.forward(c, x, context, frames)
		c.Drop(x)
		x = b.resnets[i+1].Forward(c, y, temb, frames)
		c.Drop(y)
	}
	return c.Keep(x)
}
