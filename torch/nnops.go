package torch

import (
	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Conv applies a 1-, 2- or 3-d convolution; the spatial rank k is
// len(stride), and padding and dilation have k entries too. x is
// [N, C_in, spatial...] (k spatial dimensions), w [C_out, C_in/groups,
// kernel...], b [C_out] or nil; the result is [N, C_out, spatial'...].
// Zero padding.
func (s *Scope) Conv(x, w, b *Tensor, stride, padding, dilation []int64, groups int64) *Tensor {
	op := "conv2d"
	switch len(stride) {
	case 1:
		op = "conv1d"
	case 3:
		op = "conv3d"
	}
	h, err := cb.Conv(x.handle(), w.handle(), handleOrNil(b), stride, padding, dilation, groups)
	return s.wrap(op, h, err)
}

// Linear is x Wᵀ + b for x [..., in], w [out, in] and b [out] (or nil);
// the result is [..., out].
func (s *Scope) Linear(x, w, b *Tensor) *Tensor {
	h, err := cb.Linear(x.handle(), w.handle(), handleOrNil(b))
	return s.wrap("linear", h, err)
}

// GroupNorm normalises x [N, C, ...] over each of groups groups of C/groups
// channels (and all trailing dimensions), with biased variance plus eps,
// then applies the per-channel affine w and b ([C] each, or nil). The
// result has x's shape.
func (s *Scope) GroupNorm(x *Tensor, groups int64, w, b *Tensor, eps float64) *Tensor {
	h, err := cb.GroupNorm(x.handle(), groups, handleOrNil(w), handleOrNil(b), eps)
	return s.wrap("group_norm", h, err)
}

// LayerNorm normalises x over its trailing dimensions, which must equal
// shape, with biased variance plus eps, then applies the elementwise affine
// w and b (of shape, or nil). The result has x's shape.
func (s *Scope) LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) *Tensor {
	h, err := cb.LayerNorm(x.handle(), shape, handleOrNil(w), handleOrNil(b), eps)
	return s.wrap("layer_norm", h, err)
}

// SDPA is scaled dot-product attention softmax(Q Kᵀ · scale) V for q
// [..., Lq, E], k [..., Lk, E] and v [..., Lk, Ev] (leading dimensions
// broadcast, typically [batch, heads]); the result is [..., Lq, Ev]. No
// mask, no dropout; libtorch's fused kernels where it has them.
func (s *Scope) SDPA(q, k, v *Tensor, scale float64) *Tensor {
	h, err := cb.SDPA(q.handle(), k.handle(), v.handle(), scale)
	return s.wrap("scaled_dot_product_attention", h, err)
}

// UpsampleNearest resizes the trailing len(size) (1, 2 or 3) spatial
// dimensions of x [N, C, spatial...] to size by nearest-neighbour sampling.
func (s *Scope) UpsampleNearest(x *Tensor, size ...int64) *Tensor {
	h, err := cb.UpsampleNearest(x.handle(), size)
	return s.wrap("upsample_nearest", h, err)
}

// InterpMode selects Interpolate's filter.
type InterpMode int

// Interpolation filters.
const (
	Bilinear InterpMode = iota // linear in each of H and W (2×2 taps)
	Bicubic                    // cubic convolution in each of H and W (4×4 taps), as PyTorch's
)

// The bridge's codes are the same numbers.
var _ = [1]struct{}{}[int(Bilinear)-cb.Bilinear+int(Bicubic)-cb.Bicubic]

// Interpolate resizes x [N, C, H, W] to [N, C, h, w], as PyTorch's
// interpolate with the given mode, align_corners and antialias.
func (s *Scope) Interpolate(x *Tensor, mode InterpMode, h, w int64, alignCorners, antialias bool) *Tensor {
	out, err := cb.Interpolate(x.handle(), int(mode), h, w, alignCorners, antialias)
	return s.wrap("interpolate", out, err)
}

// PadMode selects Pad's fill.
type PadMode int

// Padding fills.
const (
	PadConstant  PadMode = iota // fill with Pad's value
	PadReflect                  // mirror the edge, without repeating it
	PadReplicate                // repeat the edge element
)

var _ = [1]struct{}{}[int(PadConstant)-cb.PadConstant+int(PadReflect)-cb.PadReflect+int(PadReplicate)-cb.PadReplicate]

// Pad pads the last len(pads)/2 dimensions, pads given as [left, right,
// top, bottom, ...] (the last dimension first) like PyTorch's F.pad; value
// is the fill of PadConstant.
func (s *Scope) Pad(x *Tensor, mode PadMode, value float64, pads ...int64) *Tensor {
	out, err := cb.Pad(x.handle(), pads, int(mode), value)
	return s.wrap("pad", out, err)
}

// PixelShuffle rearranges x [N, C·r², H, W] into [N, C, H·r, W·r].
func (s *Scope) PixelShuffle(x *Tensor, r int64) *Tensor {
	out, err := cb.PixelShuffle(x.handle(), r)
	return s.wrap("pixel_shuffle", out, err)
}
