package cbridge

// #include "cbridge.h"
import "C"

import "fmt"

// Conv applies an N-d convolution (N = len(stride)); b may be the null handle.
func Conv(x, w, b Tensor, stride, padding, dilation []int64, groups int64) (Tensor, error) {
	n := len(stride)
	if n == 0 || len(padding) != n || len(dilation) != n {
		return Tensor{}, fmt.Errorf("conv: stride, padding and dilation need the same nonzero length, got %d, %d, %d", n, len(padding), len(dilation))
	}
	var out *C.osv_tensor
	s, _ := int64s(stride)
	p, _ := int64s(padding)
	d, _ := int64s(dilation)
	return result(out, C.osv_conv(x.p, w.p, b.p, s, p, d, C.int(n), C.int64_t(groups), &out))
}

// Linear computes x Wᵀ + b; b may be the null handle.
func Linear(x, w, b Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_linear(x.p, w.p, b.p, &out))
}

// GroupNorm normalises over groups of channels (dimension 1).
func GroupNorm(x Tensor, groups int64, w, b Tensor, eps float64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_group_norm(x.p, C.int64_t(groups), w.p, b.p, C.double(eps), &out))
}

// LayerNorm normalises over the trailing dimensions given by shape.
func LayerNorm(x Tensor, shape []int64, w, b Tensor, eps float64) (Tensor, error) {
	var out *C.osv_tensor
	s, n := int64s(shape)
	return result(out, C.osv_layer_norm(x.p, s, n, w.p, b.p, C.double(eps), &out))
}

// SDPA is softmax(Q Kᵀ · scale) V over the last two dimensions.
func SDPA(q, k, v Tensor, scale float64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_sdpa(q.p, k.p, v.p, C.double(scale), &out))
}

// UpsampleNearest resizes the trailing len(size) dimensions to size.
func UpsampleNearest(x Tensor, size []int64) (Tensor, error) {
	var out *C.osv_tensor
	s, n := int64s(size)
	return result(out, C.osv_upsample_nearest(x.p, s, n, &out))
}

// Interpolation modes.
const (
	Bilinear = 0
	Bicubic  = 1
)

// Interpolate resizes [N, C, H, W] to h×w.
func Interpolate(x Tensor, mode int, h, w int64, alignCorners, antialias bool) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_interpolate(x.p, C.int(mode), C.int64_t(h), C.int64_t(w), cbool(alignCorners), cbool(antialias), &out))
}

// Padding modes.
const (
	PadConstant  = 0
	PadReflect   = 1
	PadReplicate = 2
)

// Pad pads the last len(pads)/2 dimensions ([left, right, top, bottom, ...]).
func Pad(x Tensor, pads []int64, mode int, value float64) (Tensor, error) {
	var out *C.osv_tensor
	p, n := int64s(pads)
	return result(out, C.osv_pad(x.p, p, n, C.int(mode), C.double(value), &out))
}

// PixelShuffle rearranges [N, C·r², H, W] into [N, C, H·r, W·r].
func PixelShuffle(x Tensor, r int64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_pixel_shuffle(x.p, C.int64_t(r), &out))
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
