package torch

import (
	"fmt"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// wrap adopts a bridge result into s, or panics with the op's error.
func (s *Scope) wrap(op string, h cb.Tensor, err error) *Tensor {
	if err != nil {
		fail(op, err)
	}
	return newTensor(s, h)
}

func (s *Scope) unary(op string, code int, a *Tensor) *Tensor {
	h, err := cb.Unary(code, a.handle())
	return s.wrap(op, h, err)
}

func (s *Scope) binary(op string, code int, a, b *Tensor) *Tensor {
	h, err := cb.Binary(code, a.handle(), b.handle())
	return s.wrap(op, h, err)
}

func (s *Scope) scalar(op string, code int, a *Tensor, v float64) *Tensor {
	h, err := cb.Scalar(code, a.handle(), v)
	return s.wrap(op, h, err)
}

// The operation methods below make a new tensor owned by s (the caller
// when s is nil), recorded by autograd when an input requires gradients;
// on failure (a nil or released input, shapes that do not fit, a closed
// scope, an error from libtorch) they panic with *Error, recovered by
// Recover. Elementwise ones keep their input's shape; those of two inputs
// broadcast them as PyTorch does.

// Neg is −a, elementwise.
func (s *Scope) Neg(a *Tensor) *Tensor { return s.unary("neg", cb.OpNeg, a) }

// Exp is eᵃ, elementwise.
func (s *Scope) Exp(a *Tensor) *Tensor { return s.unary("exp", cb.OpExp, a) }

// Log is the natural logarithm of a, elementwise (NaN below 0, −Inf at 0).
func (s *Scope) Log(a *Tensor) *Tensor { return s.unary("log", cb.OpLog, a) }

// Sqrt is √a, elementwise (NaN below 0).
func (s *Scope) Sqrt(a *Tensor) *Tensor { return s.unary("sqrt", cb.OpSqrt, a) }

// Rsqrt is 1/√a, elementwise.
func (s *Scope) Rsqrt(a *Tensor) *Tensor { return s.unary("rsqrt", cb.OpRsqrt, a) }

// Sin is the sine of a (radians), elementwise.
func (s *Scope) Sin(a *Tensor) *Tensor { return s.unary("sin", cb.OpSin, a) }

// Cos is the cosine of a (radians), elementwise.
func (s *Scope) Cos(a *Tensor) *Tensor { return s.unary("cos", cb.OpCos, a) }

// SiLU is a·sigmoid(a), elementwise.
func (s *Scope) SiLU(a *Tensor) *Tensor { return s.unary("silu", cb.OpSiLU, a) }

// GELU is the exact (erf) GELU of a, elementwise.
func (s *Scope) GELU(a *Tensor) *Tensor { return s.unary("gelu", cb.OpGELU, a) }

// GELUTanh is the tanh approximation of GELU, elementwise (PyTorch's
// approximate="tanh").
func (s *Scope) GELUTanh(a *Tensor) *Tensor { return s.unary("gelu", cb.OpGELUTanh, a) }

// Sigmoid is 1/(1 + e⁻ᵃ), elementwise.
func (s *Scope) Sigmoid(a *Tensor) *Tensor { return s.unary("sigmoid", cb.OpSigmoid, a) }

// Tanh is the hyperbolic tangent of a, elementwise.
func (s *Scope) Tanh(a *Tensor) *Tensor { return s.unary("tanh", cb.OpTanh, a) }

// ReLU is max(a, 0), elementwise.
func (s *Scope) ReLU(a *Tensor) *Tensor { return s.unary("relu", cb.OpReLU, a) }

// Abs is |a|, elementwise.
func (s *Scope) Abs(a *Tensor) *Tensor { return s.unary("abs", cb.OpAbs, a) }

// Square is a², elementwise.
func (s *Scope) Square(a *Tensor) *Tensor { return s.unary("square", cb.OpSquare, a) }

// Contiguous is a in the default row-major layout: a new handle sharing a's
// storage when a already is, a copy otherwise.
func (s *Scope) Contiguous(a *Tensor) *Tensor {
	return s.unary("contiguous", cb.OpContiguous, a)
}

// Clone is a copy of a with its own storage (gradients flow back to a).
func (s *Scope) Clone(a *Tensor) *Tensor { return s.unary("clone", cb.OpClone, a) }

// Detach is a handle sharing a's storage that autograd does not follow: the
// way to stop a gradient.
func (s *Scope) Detach(a *Tensor) *Tensor { return s.unary("detach", cb.OpDetach, a) }

// ChannelsLast copies a 4-d [N, C, H, W] (or 5-d [N, C, D, H, W]) tensor
// into the channels-last layout (NHWC, NDHWC in memory; same shape), or
// returns it when it already is. Convolutions, GroupNorm and elementwise
// operations keep the layout; Contiguous restores the default one.
func (s *Scope) ChannelsLast(a *Tensor) *Tensor {
	return s.unary("channels_last", cb.OpChannelsLast, a)
}

// Add is a + b, broadcasting.
func (s *Scope) Add(a, b *Tensor) *Tensor { return s.binary("add", cb.OpAdd, a, b) }

// Sub is a − b, broadcasting.
func (s *Scope) Sub(a, b *Tensor) *Tensor { return s.binary("sub", cb.OpSub, a, b) }

// Mul is a·b elementwise, broadcasting.
func (s *Scope) Mul(a, b *Tensor) *Tensor { return s.binary("mul", cb.OpMul, a, b) }

// Div is a/b elementwise (true division), broadcasting.
func (s *Scope) Div(a, b *Tensor) *Tensor { return s.binary("div", cb.OpDiv, a, b) }

// Matmul is the matrix product of a [..., n, k] and b [..., k, m], giving
// [..., n, m] with the batch dimensions broadcast; 1-d operands follow
// PyTorch's matmul.
func (s *Scope) Matmul(a, b *Tensor) *Tensor { return s.binary("matmul", cb.OpMatmul, a, b) }

// Maximum is the elementwise maximum of a and b, broadcasting.
func (s *Scope) Maximum(a, b *Tensor) *Tensor { return s.binary("maximum", cb.OpMaximum, a, b) }

// Minimum is the elementwise minimum of a and b, broadcasting.
func (s *Scope) Minimum(a, b *Tensor) *Tensor { return s.binary("minimum", cb.OpMinimum, a, b) }

// Pow is aᵇ elementwise, broadcasting.
func (s *Scope) Pow(a, b *Tensor) *Tensor { return s.binary("pow", cb.OpPow, a, b) }

// AddScalar is a + v.
func (s *Scope) AddScalar(a *Tensor, v float64) *Tensor { return s.scalar("add", cb.OpAddScalar, a, v) }

// MulScalar is a·v.
func (s *Scope) MulScalar(a *Tensor, v float64) *Tensor { return s.scalar("mul", cb.OpMulScalar, a, v) }

// PowScalar is aᵛ, elementwise.
func (s *Scope) PowScalar(a *Tensor, v float64) *Tensor { return s.scalar("pow", cb.OpPowScalar, a, v) }

// RSub is v − a.
func (s *Scope) RSub(v float64, a *Tensor) *Tensor { return s.scalar("rsub", cb.OpScalarSub, a, v) }

// RDiv is v/a, elementwise.
func (s *Scope) RDiv(v float64, a *Tensor) *Tensor { return s.scalar("rdiv", cb.OpScalarDiv, a, v) }

// ClampMin is max(a, v), elementwise.
func (s *Scope) ClampMin(a *Tensor, v float64) *Tensor { return s.scalar("clamp", cb.OpClampMin, a, v) }

// ClampMax is min(a, v), elementwise.
func (s *Scope) ClampMax(a *Tensor, v float64) *Tensor { return s.scalar("clamp", cb.OpClampMax, a, v) }

// LessScalar is a < v, elementwise, as a bool tensor (false where a is
// NaN).
func (s *Scope) LessScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("lt", cb.OpLessScalar, a, v)
}

// GreaterScalar is a > v, elementwise, as a bool tensor (false where a is
// NaN).
func (s *Scope) GreaterScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("gt", cb.OpGreaterScalar, a, v)
}

// LeakyReLU is a where a > 0 and slope·a elsewhere.
func (s *Scope) LeakyReLU(a *Tensor, slope float64) *Tensor {
	return s.scalar("leaky_relu", cb.OpLeakyReLU, a, slope)
}

// Sum adds a's elements over dims (negative count from the end), keeping
// them as size-1 dimensions when keepDim is set; with no dims it sums every
// element into a 0-d tensor (keepDim is then ignored).
func (s *Scope) Sum(a *Tensor, keepDim bool, dims ...int64) *Tensor {
	h, err := cb.Reduce(cb.RedSum, a.handle(), dims, keepDim)
	return s.wrap("sum", h, err)
}

// Mean averages a's elements over dims, as Sum adds them (a floating-point
// a only).
func (s *Scope) Mean(a *Tensor, keepDim bool, dims ...int64) *Tensor {
	h, err := cb.Reduce(cb.RedMean, a.handle(), dims, keepDim)
	return s.wrap("mean", h, err)
}

// Amax is the largest of a's elements over dims, as Sum adds them.
func (s *Scope) Amax(a *Tensor, keepDim bool, dims ...int64) *Tensor {
	h, err := cb.Reduce(cb.RedMax, a.handle(), dims, keepDim)
	return s.wrap("amax", h, err)
}

// Lerp is start + weight·(end − start), broadcasting, in one kernel.
func (s *Scope) Lerp(start, end, weight *Tensor) *Tensor {
	h, err := cb.Lerp(start.handle(), end.handle(), weight.handle())
	return s.wrap("lerp", h, err)
}

// Where selects a where cond (a Bool tensor) holds and b elsewhere,
// broadcasting the three.
func (s *Scope) Where(cond, a, b *Tensor) *Tensor {
	h, err := cb.Where(cond.handle(), a.handle(), b.handle())
	return s.wrap("where", h, err)
}

// Softmax is the softmax of a along dim (negative counts from the end).
func (s *Scope) Softmax(a *Tensor, dim int64) *Tensor {
	h, err := cb.Softmax(a.handle(), dim)
	return s.wrap("softmax", h, err)
}

// Reshape gives a's elements, in row-major order, the shape (one size may be
// -1, inferred); a view when the layout allows it, a copy otherwise. The
// element count must not change.
func (s *Scope) Reshape(a *Tensor, shape ...int64) *Tensor {
	h, err := cb.Reshape(a.handle(), shape)
	return s.wrap("reshape", h, err)
}

// Permute reorders a's dimensions: dimension i of the result is dimension
// dims[i] of a (a view; dims is a permutation of 0..rank−1).
func (s *Scope) Permute(a *Tensor, dims ...int64) *Tensor {
	h, err := cb.Permute(a.handle(), dims)
	return s.wrap("permute", h, err)
}

// Transpose swaps dimensions d0 and d1 (negative count from the end) of a
// (a view).
func (s *Scope) Transpose(a *Tensor, d0, d1 int) *Tensor {
	n := a.Dim()
	perm := make([]int64, n)
	for i := range perm {
		perm[i] = int64(i)
	}
	if d0 < 0 {
		d0 += n
	}
	if d1 < 0 {
		d1 += n
	}
	if d0 < 0 || d0 >= n || d1 < 0 || d1 >= n {
		Failf("transpose", "dimensions %d, %d out of range for rank %d", d0, d1, n)
	}
	perm[d0], perm[d1] = perm[d1], perm[d0]
	return s.Permute(a, perm...)
}

// Expand broadcasts a's size-1 dimensions to shape, which may also add
// leading dimensions (a view without copying; -1 keeps a size).
func (s *Scope) Expand(a *Tensor, shape ...int64) *Tensor {
	h, err := cb.Expand(a.handle(), shape)
	return s.wrap("expand", h, err)
}

// Slice takes the elements start:end (step 1) along dim (a view), with
// PyTorch's rules: negative indices count from the end and indices past
// either end are clamped.
func (s *Scope) Slice(a *Tensor, dim int, start, end int64) *Tensor {
	h, err := cb.Slice(a.handle(), int64(dim), start, end, 1)
	return s.wrap("slice", h, err)
}

// Select takes index i along dim (negative counts from the end) and drops
// that dimension.
func (s *Scope) Select(a *Tensor, dim int, i int64) *Tensor {
	shape := a.Shape()
	if dim < 0 {
		dim += len(shape)
	}
	if dim < 0 || dim >= len(shape) {
		Failf("select", "dimension %d out of range for shape %v", dim, shape)
	}
	v := s.Slice(a, dim, i, i+1)
	out := append(append([]int64{}, shape[:dim]...), shape[dim+1:]...)
	return s.Reshape(v, out...)
}

// Chunk splits dim (negative counts from the end) into n equal parts
// (views); the size of dim must be a multiple of n.
func (s *Scope) Chunk(a *Tensor, n int, dim int) []*Tensor {
	size := a.Size(dim)
	if n <= 0 || size%int64(n) != 0 {
		Failf("chunk", "cannot split size %d of dimension %d into %d equal parts", size, dim, n)
	}
	step := size / int64(n)
	out := make([]*Tensor, n)
	for i := range out {
		out[i] = s.Slice(a, dim, int64(i)*step, int64(i+1)*step)
	}
	return out
}

// Cat concatenates ts, of one shape except along dim, along dim (at least
// one tensor).
func (s *Scope) Cat(dim int, ts ...*Tensor) *Tensor {
	hs := make([]cb.Tensor, len(ts))
	for i, t := range ts {
		hs[i] = t.handle()
	}
	h, err := cb.Cat(hs, int64(dim))
	return s.wrap("cat", h, err)
}

// RepeatInterleave repeats each slice along dim n times in a row: [a, b]
// becomes [a, a, b, b] for n = 2.
func (s *Scope) RepeatInterleave(a *Tensor, n int64, dim int) *Tensor {
	h, err := cb.RepeatInterleave(a.handle(), n, int64(dim))
	return s.wrap("repeat_interleave", h, err)
}

// Cast converts a to dtype, keeping the device. When a already has dtype it
// returns a itself (no copy, still owned by its owner): do not Drop the
// result separately from a.
func (s *Scope) Cast(a *Tensor, dtype DType) *Tensor {
	if a.DType() == dtype {
		return a
	}
	t, err := a.To(s, dtype, a.Device())
	if err != nil {
		fail("to", err)
	}
	return t
}

// Scalar makes a 0-d tensor holding v, with like's dtype and device.
func (s *Scope) Scalar(like *Tensor, v float64) *Tensor {
	t, err := Full(s, nil, v, like.DType(), like.Device())
	if err != nil {
		fail("full", err)
	}
	return t
}

// Filled makes a tensor of shape filled with v, with like's dtype and
// device.
func (s *Scope) Filled(like *Tensor, v float64, shape ...int64) *Tensor {
	t, err := Full(s, shape, v, like.DType(), like.Device())
	if err != nil {
		fail("full", fmt.Errorf("shape %v: %w", shape, err))
	}
	return t
}
