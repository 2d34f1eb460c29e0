package torch

import (
	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Conv applies a 1-, 2- or 3-d convolution; the spatial rank is len(stride).
// b may be nil.
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

// Linear is x Wᵀ + b (b may be nil).
func (s *Scope) Linear(x, w, b *Tensor) *Tensor {
	h, err := cb.Linear(x.handle(), w.handle(), handleOrNil(b))
	return s.wrap("linear", h, err)
}

// GroupNorm normalises dimension 1 in groups (w and b may be nil).
func (s *Scope) GroupNorm(x *Tensor, groups int64, w, b *Tensor, eps float64) *Tensor {
	h, err := cb.GroupNorm(x.handle(), groups, handleOrNil(w), handleOrNil(b), eps)
	return s.wrap("group_norm", h, err)
}

// LayerNorm normalises the trailing dimensions given by shape.
func (s *Scope) LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) *Tensor {
	h, err := cb.LayerNorm(x.handle(), shape, handleOrNil(w), handleOrNil(b), eps)
	return s.wrap("layer_norm", h, err)
}

// SDPA is scaled dot-product attention softmax(Q Kᵀ · scale) V over
// [..., tokens, head_dim] inputs; libtorch's fused kernels where it has them.
func (s *Scope) SDPA(q, k, v *Tensor, scale float64) *Tensor {
	h, err := cb.SDPA(q.handle(), k.handle(), v.handle(), scale)
	return s.wrap("scaled_dot_product_attention", h, err)
}

// UpsampleNearest resizes the trailing len(size) dimensions to size.
func (s *Scope) UpsampleNearest(x *Tensor, size ...int64) *Tensor {
	h, err := cb.UpsampleNearest(x.handle(), size)
	return s.wrap("upsample_nearest", h, err)
}
