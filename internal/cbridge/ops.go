package cbridge

// #include <stdlib.h>
// #include "cbridge.h"
import "C"

import "errors"

// Unary op codes (ops.cc).
const (
	OpNeg = iota
	OpExp
	OpLog
	OpSqrt
	OpRsqrt
	OpSin
	OpCos
	OpSiLU
	OpGELU
	OpSigmoid
	OpTanh
	OpReLU
	OpAbs
	OpContiguous
	OpClone
	OpSquare
	OpDetach
	OpGELUTanh
	OpChannelsLast
)

// Binary op codes.
const (
	OpAdd = iota
	OpSub
	OpMul
	OpDiv
	OpMatmul
	OpMaximum
	OpMinimum
	OpPow
	OpGreater
	OpLess
	OpEqual
)

// Tensor-scalar op codes.
const (
	OpAddScalar = iota
	OpMulScalar
	OpPowScalar
	OpScalarSub // s − x
	OpScalarDiv // s / x
	OpClampMin
	OpClampMax
	OpGreaterScalar
	OpLessScalar
	OpLeakyReLU
)

// Reduction codes.
const (
	RedSum = iota
	RedMean
	RedMax
	RedMin
)

func result(out *C.osv_tensor, s *C.char) (Tensor, error) {
	return Tensor{out}, status(s)
}

// Unary applies an elementwise op.
func Unary(op int, a Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_unary(C.int(op), a.p, &out))
}

// Binary applies a broadcasting binary op.
func Binary(op int, a, b Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_binary(C.int(op), a.p, b.p, &out))
}

// Scalar applies an op between a tensor and a number.
func Scalar(op int, a Tensor, s float64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_scalar(C.int(op), a.p, C.double(s), &out))
}

// Reduce reduces over dims (all dims when empty).
func Reduce(op int, a Tensor, dims []int64, keepDim bool) (Tensor, error) {
	var out *C.osv_tensor
	d, n := int64s(dims)
	k := C.int(0)
	if keepDim {
		k = 1
	}
	return result(out, C.osv_reduce(C.int(op), a.p, d, n, k, &out))
}

// Lerp is start + weight·(end − start) in one kernel.
func Lerp(start, end, weight Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_lerp(start.p, end.p, weight.p, &out))
}

// Where selects a where cond holds, b elsewhere.
func Where(cond, a, b Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_where(cond.p, a.p, b.p, &out))
}

// Softmax along dim.
func Softmax(a Tensor, dim int64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_softmax(a.p, C.int64_t(dim), &out))
}

// Reshape returns a view or copy with a new shape (-1 infers one size).
func Reshape(a Tensor, shape []int64) (Tensor, error) {
	var out *C.osv_tensor
	s, n := int64s(shape)
	return result(out, C.osv_reshape(a.p, s, n, &out))
}

// Permute reorders dimensions.
func Permute(a Tensor, dims []int64) (Tensor, error) {
	var out *C.osv_tensor
	s, n := int64s(dims)
	return result(out, C.osv_permute(a.p, s, n, &out))
}

// Expand broadcasts size-1 dimensions without copying.
func Expand(a Tensor, shape []int64) (Tensor, error) {
	var out *C.osv_tensor
	s, n := int64s(shape)
	return result(out, C.osv_expand(a.p, s, n, &out))
}

// Slice takes start:end:step along dim.
func Slice(a Tensor, dim, start, end, step int64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_slice(a.p, C.int64_t(dim), C.int64_t(start), C.int64_t(end), C.int64_t(step), &out))
}

// Cat concatenates along dim.
func Cat(ts []Tensor, dim int64) (Tensor, error) {
	if len(ts) == 0 {
		return Tensor{}, errors.New("cat of no tensors")
	}
	var out *C.osv_tensor
	// A Go array of native pointers holds no Go pointers, so C may read it.
	arr := make([]*C.osv_tensor, len(ts))
	for i, t := range ts {
		arr[i] = t.p
	}
	return result(out, C.osv_cat(&arr[0], C.int(len(arr)), C.int64_t(dim), &out))
}

// RepeatInterleave repeats each slice along dim the given number of times.
func RepeatInterleave(a Tensor, repeats, dim int64) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_repeat_interleave(a.p, C.int64_t(repeats), C.int64_t(dim), &out))
}
