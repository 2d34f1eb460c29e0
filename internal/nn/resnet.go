package nn

import "github.com/onestepvideo/osv-go/torch"

// ResnetBlock2D is diffusers' ResnetBlock2D (pre-norm, SiLU, additive time
// embedding when it has one, 1×1 conv_shortcut when the channel count
// changes): x + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))).
type ResnetBlock2D struct {
	Path         string
	Norm1, Norm2 *GroupNorm
	Conv1, Conv2 *Conv
	TimeEmbProj  *Linear // nil without a time embedding
	Shortcut     *Conv   // nil when in == out
}

// NewResnetBlock2D registers a block; temb 0 means no time embedding.
func NewResnetBlock2D(ps *torch.Params, path string, in, out, temb, groups int64, eps float64) *ResnetBlock2D {
	r := &ResnetBlock2D{
		Path:  path,
		Norm1: NewGroupNorm(ps, path+".norm1", groups, in, eps),
		Conv1: NewConv2d(ps, path+".conv1", in, out, 3, 1, 1),
		Norm2: NewGroupNorm(ps, path+".norm2", groups, out, eps),
		Conv2: NewConv2d(ps, path+".conv2", out, out, 3, 1, 1),
	}
	if temb > 0 {
		r.TimeEmbProj = NewLinear(ps, path+".time_emb_proj", temb, out, true)
	}
	if in != out {
		r.Shortcut = NewConv2d(ps, path+".conv_shortcut", in, out, 1, 1, 0)
	}
	return r
}

// Forward maps x [N, C, H, W] with temb [N, T] (nil without one).
func (r *ResnetBlock2D) Forward(s *torch.Scope, x, temb *torch.Tensor) *torch.Tensor {
	return r.ForwardBiased(s, x, nil, temb)
}

// ForwardBiased is Forward of x + xb, xb a per-channel bias [C] (nil:
// none) that the layer before left out (Conv.ForwardSplitBias): it is
// folded into the first GroupNorm and the residual sum instead of being
// added over the whole of x.
func (r *ResnetBlock2D) ForwardBiased(s *torch.Scope, x, xb, temb *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(r.Path)
	c := s.Child()
	defer c.Close()
	var e *torch.Tensor
	if r.TimeEmbProj != nil && temb != nil {
		e = r.TimeEmbProj.Forward(c, c.SiLU(temb))
		e = c.Reshape(e, e.Size(0), e.Size(1), 1, 1)
	}
	return c.Keep(residualBody(c, x, xb, e, nil, r.Norm1, r.Conv1, r.Norm2, r.Conv2, r.Shortcut))
}

// residualBody is the computation shared by the spatial and temporal
// residual blocks, x + alpha·body(x) (alpha nil: 1) for x plus the
// pending per-channel bias xb (nil: none), written so that on
// CUDA it runs in fused passes: GroupNorm with SiLU, each convolution's
// bias folded into the operation after it (the next GroupNorm, the
// residual sum). It drops each intermediate as soon as it is dead (at full
// size each is tens of megabytes). e, the time embedding, may be nil.
func residualBody(c *torch.Scope, x, xb, e, alpha *torch.Tensor, norm1 *GroupNorm, conv1 *Conv, norm2 *GroupNorm, conv2, shortcut *Conv) *torch.Tensor {
	if xb != nil && alpha != nil {
		x = c.Add(x, channelView(c, xb, x.Dim())) // x + α·(…) needs x whole
		xb = nil
	}
	a := norm1.ForwardAct(c, x, xb, true)
	h, bias := conv1.ForwardSplitBias(c, a)
	c.Drop(a)
	if e != nil {
		if perSampleChannel(e, h) {
			// e [N, C, 1, ...] joins the bias as one [N, C] offset.
			bias = sumBias(c, c.Reshape(e, e.Size(0), e.Size(1)), bias)
		} else {
			h2 := c.Add(h, e)
			c.Drop(h)
			h = h2
		}
	}
	a = norm2.ForwardAct(c, h, bias, true)
	c.Drop(h)
	h, bias = conv2.ForwardSplitBias(c, a)
	c.Drop(a)
	if shortcut != nil {
		// The pending bias passes through the (linear) shortcut as W·xb;
		// that and the shortcut's own bias join conv2's in the residual sum.
		if xb != nil {
			if wb := shortcut.pointwiseOf(c, xb); wb != nil {
				bias = sumBias(c, bias, wb)
			} else {
				x = c.Add(x, channelView(c, xb, x.Dim()))
			}
			xb = nil
		}
		var sb *torch.Tensor
		x, sb = shortcut.ForwardSplitBias(c, x)
		if alpha != nil && sb != nil {
			x = c.Add(x, channelView(c, sb, x.Dim())) // x + α·(…) needs x whole
		} else {
			bias = sumBias(c, bias, sb)
		}
	}
	bias = sumBias(c, bias, xb) // without a shortcut x itself lacks xb
	out := c.Residual(x, h, bias, alpha)
	c.Drop(h, x)
	return out
}

// sumBias adds two per-channel biases, either of which may be nil.
func sumBias(c *torch.Scope, a, b *torch.Tensor) *torch.Tensor {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return c.Add(a, b)
}

// channelView shapes a per-channel bias [C] as [1, C, 1, ...] of rank dims.
func channelView(c *torch.Scope, b *torch.Tensor, dims int) *torch.Tensor {
	shape := make([]int64, dims)
	for i := range shape {
		shape[i] = 1
	}
	shape[1] = b.Size(0)
	return c.Reshape(b, shape...)
}

// perSampleChannel reports whether e is [N, C, 1, ...] for h [N, C, ...].
func perSampleChannel(e, h *torch.Tensor) bool {
	if e.Dim() != h.Dim() || e.Size(0) != h.Size(0) || e.Size(1) != h.Size(1) {
		return false
	}
	for i := 2; i < e.Dim(); i++ {
		if e.Size(i) != 1 {
			return false
		}
	}
	return true
}

// TemporalResnetBlock is diffusers' TemporalResnetBlock: ResnetBlock2D's
// shape with (3, 1, 1) Conv3d kernels mixing neighbouring frames of
// x [B, C, F, H, W]; the time embedding is per frame, temb [B, F, T].
type TemporalResnetBlock struct {
	Path         string
	Norm1, Norm2 *GroupNorm
	Conv1, Conv2 *Conv
	TimeEmbProj  *Linear // nil without a time embedding
	Shortcut     *Conv   // 1×1×1, nil when in == out
}

// NewTemporalResnetBlock registers a block; temb 0 means no time embedding.
func NewTemporalResnetBlock(ps *torch.Params, path string, in, out, temb, groups int64, eps float64) *TemporalResnetBlock {
	conv := func(name string, cin int64) *Conv {
		return NewConv(ps, path+"."+name, cin, out, []int64{3, 1, 1}, ConvOptions{Padding: []int64{1, 0, 0}})
	}
	r := &TemporalResnetBlock{
		Path:  path,
		Norm1: NewGroupNorm(ps, path+".norm1", groups, in, eps),
		Conv1: conv("conv1", in),
		Norm2: NewGroupNorm(ps, path+".norm2", groups, out, eps),
		Conv2: conv("conv2", out),
	}
	if temb > 0 {
		r.TimeEmbProj = NewLinear(ps, path+".time_emb_proj", temb, out, true)
	}
	if in != out {
		r.Shortcut = NewConv(ps, path+".conv_shortcut", in, out, []int64{1, 1, 1}, ConvOptions{})
	}
	return r
}

// Forward maps x [B, C, F, H, W] with temb [B, F, T] (nil without one).
func (r *TemporalResnetBlock) Forward(s *torch.Scope, x, temb *torch.Tensor) *torch.Tensor {
	return r.forward(s, x, temb, nil)
}

// ForwardBlended is x + alpha·(Forward(x) − x), the block blended with
// its input by the weight alpha (a one-element tensor) in the same fused
// residual pass; it needs in == out (no shortcut).
func (r *TemporalResnetBlock) ForwardBlended(s *torch.Scope, x, temb, alpha *torch.Tensor) *torch.Tensor {
	if r.Shortcut != nil {
		torch.Failf(r.Path, "a blended temporal block needs as many input as output channels")
	}
	return r.forward(s, x, temb, alpha)
}

func (r *TemporalResnetBlock) forward(s *torch.Scope, x, temb, alpha *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(r.Path)
	c := s.Child()
	defer c.Close()
	var e *torch.Tensor
	if r.TimeEmbProj != nil && temb != nil {
		e = r.TimeEmbProj.Forward(c, c.SiLU(temb)) // [B, F, C]
		e = c.Reshape(c.Permute(e, 0, 2, 1), e.Size(0), e.Size(2), e.Size(1), 1, 1)
	}
	return c.Keep(residualBody(c, x, nil, e, alpha, r.Norm1, r.Conv1, r.Norm2, r.Conv2, r.Shortcut))
}

// AlphaBlender is diffusers' AlphaBlender with the "learned" or
// "learned_with_images" strategy and no image-only frames: with
// α = sigmoid(mix_factor) the output is α·spatial + (1−α)·temporal, or
// (1−α)·spatial + α·temporal when Switch (switch_spatial_to_temporal_mix).
type AlphaBlender struct {
	MixFactor *torch.Param
	Switch    bool
}

// NewAlphaBlender registers mix_factor, initialised to alpha.
func NewAlphaBlender(ps *torch.Params, path string, alpha float64, switched bool) *AlphaBlender {
	return &AlphaBlender{
		MixFactor: ps.Add(path+".mix_factor", []int64{1}, torch.Init{Kind: torch.InitConst, Value: alpha}),
		Switch:    switched,
	}
}

// Forward blends two tensors of the same shape in one kernel.
func (a *AlphaBlender) Forward(s *torch.Scope, spatial, temporal *torch.Tensor) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	w := c.Cast(c.Sigmoid(a.MixFactor.T), spatial.DType())
	if a.Switch {
		return c.Keep(c.Lerp(spatial, temporal, w))
	}
	return c.Keep(c.Lerp(temporal, spatial, w))
}

// TemporalWeight is the temporal branch's weight in the blend, in dtype:
// the output is spatial + weight·(temporal − spatial).
func (a *AlphaBlender) TemporalWeight(s *torch.Scope, dtype torch.DType) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	w := c.Sigmoid(a.MixFactor.T)
	if !a.Switch {
		w = c.RSub(1, w)
	}
	return c.Keep(c.Cast(w, dtype))
}

// SpatioTemporalResBlock is diffusers' SpatioTemporalResBlock: a spatial
// ResnetBlock2D per frame, a TemporalResnetBlock across frames, blended by
// an AlphaBlender. Frames travel in the batch dimension: x [B·F, C, H, W].
type SpatioTemporalResBlock struct {
	Path     string
	Spatial  *ResnetBlock2D
	Temporal *TemporalResnetBlock
	Mixer    *AlphaBlender
}

// SpatioTemporalOptions are the block's settings beyond its sizes.
type SpatioTemporalOptions struct {
	Groups      int64   // GroupNorm groups (32)
	Eps         float64 // spatial GroupNorm eps
	TemporalEps float64 // temporal GroupNorm eps (0: Eps)
	MergeFactor float64 // initial mix_factor
	Switch      bool    // switch_spatial_to_temporal_mix
}

// NewSpatioTemporalResBlock registers a block; temb 0 means no time embedding.
func NewSpatioTemporalResBlock(ps *torch.Params, path string, in, out, temb int64, o SpatioTemporalOptions) *SpatioTemporalResBlock {
	teps := o.TemporalEps
	if teps == 0 {
		teps = o.Eps
	}
	return &SpatioTemporalResBlock{
		Path:     path,
		Spatial:  NewResnetBlock2D(ps, path+".spatial_res_block", in, out, temb, o.Groups, o.Eps),
		Temporal: NewTemporalResnetBlock(ps, path+".temporal_res_block", out, out, temb, o.Groups, teps),
		Mixer:    NewAlphaBlender(ps, path+".time_mixer", o.MergeFactor, o.Switch),
	}
}

// Forward maps x [B·F, C, H, W] with temb [B·F, T] (or nil) for clips of
// frames frames.
func (r *SpatioTemporalResBlock) Forward(s *torch.Scope, x, temb *torch.Tensor, frames int64) *torch.Tensor {
	return r.ForwardBiased(s, x, nil, temb, frames)
}

// ForwardBiased is Forward of x + xb for a pending per-channel bias xb
// (see ResnetBlock2D.ForwardBiased).
func (r *SpatioTemporalResBlock) ForwardBiased(s *torch.Scope, x, xb, temb *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(r.Path)
	c := s.Child()
	defer c.Close()
	h := r.Spatial.ForwardBiased(c, x, xb, temb)
	bf, ch, ht, wd := h.Size(0), h.Size(1), h.Size(2), h.Size(3)
	b := bf / frames
	spatial := c.Permute(c.Reshape(h, b, frames, ch, ht, wd), 0, 2, 1, 3, 4) // [B, C, F, H, W]
	var tt *torch.Tensor
	if temb != nil {
		tt = c.Reshape(temb, b, frames, -1)
	}
	// spatial + α·(temporal − spatial), with temporal = spatial + body:
	// the blend is the temporal block's own residual sum, weighted.
	mixed := r.Temporal.ForwardBlended(c, spatial, tt, r.Mixer.TemporalWeight(c, h.DType()))
	return c.Keep(c.Reshape(c.Permute(mixed, 0, 2, 1, 3, 4), bf, ch, ht, wd))
}
