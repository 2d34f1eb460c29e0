package unet

import (
	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/internal/torch"
)

// resnetBlock2D is diffusers' ResnetBlock2D (pre-norm, SiLU, additive time
// embedding, 1×1 conv_shortcut when the channel count changes).
type resnetBlock2D struct {
	path        string
	norm1       *nn.GroupNorm
	conv1       *nn.Conv
	timeEmbProj *nn.Linear
	norm2       *nn.GroupNorm
	conv2       *nn.Conv
	shortcut    *nn.Conv
}

func newResnetBlock2D(ps *nn.Params, path string, in, out, temb int64, eps float64) *resnetBlock2D {
	r := &resnetBlock2D{
		path:        path,
		norm1:       nn.NewGroupNorm(ps, path+".norm1", groups, in, eps),
		conv1:       nn.NewConv2d(ps, path+".conv1", in, out, 3, 1, 1),
		timeEmbProj: nn.NewLinear(ps, path+".time_emb_proj", temb, out, true),
		norm2:       nn.NewGroupNorm(ps, path+".norm2", groups, out, eps),
		conv2:       nn.NewConv2d(ps, path+".conv2", out, out, 3, 1, 1),
	}
	if in != out {
		r.shortcut = nn.NewConv2d(ps, path+".conv_shortcut", in, out, 1, 1, 0)
	}
	return r
}

// forward maps x [BF, C, H, W] with temb [BF, T]. Dead intermediates are
// dropped as soon as possible: at full size each is tens of megabytes.
func (r *resnetBlock2D) forward(s *torch.Scope, x, temb *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(r.path)
	c := s.Child()
	defer c.Close()
	e := r.timeEmbProj.Forward(c, c.SiLU(temb))
	e = c.Reshape(e, e.Size(0), e.Size(1), 1, 1)
	return c.Keep(residualTail(c, x, e, r.norm1, r.conv1, r.norm2, r.conv2, r.shortcut))
}

// residualTail is the body shared by the spatial and temporal residual
// blocks: x + conv2(silu(norm2(conv1(silu(norm1(x))) + e))), through the
// shortcut convolution when there is one.
func residualTail(c *torch.Scope, x, e *torch.Tensor, norm1 *nn.GroupNorm, conv1 *nn.Conv, norm2 *nn.GroupNorm, conv2, shortcut *nn.Conv) *torch.Tensor {
	n := norm1.Forward(c, x)
	a := c.SiLU(n)
	c.Drop(n)
	h := conv1.Forward(c, a)
	c.Drop(a)
	h2 := c.Add(h, e)
	c.Drop(h)
	n = norm2.Forward(c, h2)
	c.Drop(h2)
	a = c.SiLU(n)
	c.Drop(n)
	h = conv2.Forward(c, a)
	c.Drop(a)
	if shortcut != nil {
		x = shortcut.Forward(c, x)
	}
	out := c.Add(x, h)
	c.Drop(h, x)
	return out
}

// temporalResnetBlock is diffusers' TemporalResnetBlock: the same shape as
// ResnetBlock2D with (3, 1, 1) Conv3d kernels mixing neighbouring frames.
type temporalResnetBlock struct {
	path        string
	norm1       *nn.GroupNorm
	conv1       *nn.Conv
	timeEmbProj *nn.Linear
	norm2       *nn.GroupNorm
	conv2       *nn.Conv
}

func newTemporalResnetBlock(ps *nn.Params, path string, ch, temb int64, eps float64) *temporalResnetBlock {
	conv := func(name string) *nn.Conv {
		return nn.NewConv(ps, path+"."+name, ch, ch, []int64{3, 1, 1}, nn.ConvOptions{Padding: []int64{1, 0, 0}})
	}
	return &temporalResnetBlock{
		path:        path,
		norm1:       nn.NewGroupNorm(ps, path+".norm1", groups, ch, eps),
		conv1:       conv("conv1"),
		timeEmbProj: nn.NewLinear(ps, path+".time_emb_proj", temb, ch, true),
		norm2:       nn.NewGroupNorm(ps, path+".norm2", groups, ch, eps),
		conv2:       conv("conv2"),
	}
}

// forward maps x [B, C, F, H, W] with temb [B, F, T].
func (r *temporalResnetBlock) forward(s *torch.Scope, x, temb *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(r.path)
	c := s.Child()
	defer c.Close()
	e := r.timeEmbProj.Forward(c, c.SiLU(temb)) // [B, F, C]
	e = c.Reshape(c.Permute(e, 0, 2, 1), e.Size(0), e.Size(2), e.Size(1), 1, 1)
	return c.Keep(residualTail(c, x, e, r.norm1, r.conv1, r.norm2, r.conv2, nil))
}

// alphaBlender is diffusers' AlphaBlender (learned_with_images, no
// image-only frames): with α = sigmoid(mix_factor) the output is
// α·spatial + (1−α)·temporal, in the residual block and in the transformer
// alike (checked against diffusers' outputs in TestParityUNet).
type alphaBlender struct {
	mixFactor *nn.Param
}

func newAlphaBlender(ps *nn.Params, path string, alpha float64) *alphaBlender {
	return &alphaBlender{mixFactor: ps.Add(path+".mix_factor", []int64{1}, nn.Init{Kind: nn.InitConst, Value: alpha})}
}

// forward is temporal + α·(spatial − temporal).
func (a *alphaBlender) forward(s *torch.Scope, spatial, temporal *torch.Tensor) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	return c.Keep(c.Lerp(temporal, spatial, c.Sigmoid(a.mixFactor.T)))
}

// spatioTemporalResBlock is diffusers' SpatioTemporalResBlock: a spatial
// ResnetBlock2D per frame, a temporal block across frames, blended.
type spatioTemporalResBlock struct {
	path     string
	spatial  *resnetBlock2D
	temporal *temporalResnetBlock
	mixer    *alphaBlender
}

func newSpatioTemporalResBlock(ps *nn.Params, path string, in, out, temb int64, eps float64) *spatioTemporalResBlock {
	return &spatioTemporalResBlock{
		path:     path,
		spatial:  newResnetBlock2D(ps, path+".spatial_res_block", in, out, temb, eps),
		temporal: newTemporalResnetBlock(ps, path+".temporal_res_block", out, temb, eps),
		mixer:    newAlphaBlender(ps, path+".time_mixer", 0.5),
	}
}

// forward maps x [BF, C, H, W] with temb [BF, T] for clips of frames frames.
func (r *spatioTemporalResBlock) forward(s *torch.Scope, x, temb *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(r.path)
	c := s.Child()
	defer c.Close()
	h := r.spatial.forward(c, x, temb)
	bf, ch, ht, wd := h.Size(0), h.Size(1), h.Size(2), h.Size(3)
	b := bf / frames
	toVideo := func(t *torch.Tensor) *torch.Tensor { // [BF, C, H, W] → [B, C, F, H, W]
		return c.Permute(c.Reshape(t, b, frames, ch, ht, wd), 0, 2, 1, 3, 4)
	}
	spatial := toVideo(h)
	temporal := r.temporal.forward(c, spatial, c.Reshape(temb, b, frames, -1))
	mixed := r.mixer.forward(c, spatial, temporal)
	c.Drop(temporal)
	return c.Keep(c.Reshape(c.Permute(mixed, 0, 2, 1, 3, 4), bf, ch, ht, wd))
}
