package unet

import (
	"strconv"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/internal/torch"
)

func itoa[T ~int | ~int64](i T) string { return strconv.FormatInt(int64(i), 10) }

// downBlock is DownBlockSpatioTemporal, or CrossAttnDownBlockSpatioTemporal
// when it has attentions: resnets (each followed by its attention), then an
// optional stride-2 convolution.
type downBlock struct {
	path        string
	resnets     []*spatioTemporalResBlock
	attentions  []*transformerSpatioTemporal
	downsampler *nn.Conv
}

// forward returns the block's output and the skip tensors it produces.
func (b *downBlock) forward(s *torch.Scope, x, temb, context *torch.Tensor, frames int64) (*torch.Tensor, []*torch.Tensor) {
	defer torch.Annotate(b.path)
	var skips []*torch.Tensor
	for i, r := range b.resnets {
		x = r.forward(s, x, temb, frames)
		if b.attentions != nil {
			x = b.attentions[i].forward(s, x, context, frames)
		}
		skips = append(skips, x)
	}
	if b.downsampler != nil {
		x = b.downsampler.Forward(s, x)
		skips = append(skips, x)
	}
	return x, skips
}

// upBlock is UpBlockSpatioTemporal, or CrossAttnUpBlockSpatioTemporal when
// it has attentions: each resnet takes the previous output concatenated
// with a skip tensor; then an optional nearest ×2 upsampling and conv.
type upBlock struct {
	path       string
	resnets    []*spatioTemporalResBlock
	attentions []*transformerSpatioTemporal
	upsampler  *nn.Conv
}

// forward consumes skips from the end and returns the rest.
func (b *upBlock) forward(s *torch.Scope, x *torch.Tensor, skips []*torch.Tensor, temb, context *torch.Tensor, frames int64) (*torch.Tensor, []*torch.Tensor) {
	defer torch.Annotate(b.path)
	for i, r := range b.resnets {
		skip := skips[len(skips)-1]
		skips = skips[:len(skips)-1]
		x = r.forward(s, s.Cat(1, x, skip), temb, frames)
		if b.attentions != nil {
			x = b.attentions[i].forward(s, x, context, frames)
		}
	}
	if b.upsampler != nil {
		x = s.UpsampleNearest(x, 2*x.Size(2), 2*x.Size(3))
		x = b.upsampler.Forward(s, x)
	}
	return x, skips
}

// midBlock is UNetMidBlockSpatioTemporal: resnet, then (attention, resnet)
// pairs.
type midBlock struct {
	path       string
	resnets    []*spatioTemporalResBlock
	attentions []*transformerSpatioTemporal
}

func (b *midBlock) forward(s *torch.Scope, x, temb, context *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(b.path)
	x = b.resnets[0].forward(s, x, temb, frames)
	for i, a := range b.attentions {
		x = a.forward(s, x, context, frames)
		x = b.resnets[i+1].forward(s, x, temb, frames)
	}
	return x
}
