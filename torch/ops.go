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

// Elementwise functions.
func (s *Scope) Neg(a *Tensor) *Tensor        { return s.unary("neg", cb.OpNeg, a) }
func (s *Scope) Exp(a *Tensor) *Tensor        { return s.unary("exp", cb.OpExp, a) }
func (s *Scope) Log(a *Tensor) *Tensor        { return s.unary("log", cb.OpLog, a) }
func (s *Scope) Sqrt(a *Tensor) *Tensor       { return s.unary("sqrt", cb.OpSqrt, a) }
func (s *Scope) Rsqrt(a *Tensor) *Tensor      { return s.unary("rsqrt", cb.OpRsqrt, a) }
func (s *Scope) Sin(a *Tensor) *Tensor        { return s.unary("sin", cb.OpSin, a) }
func (s *Scope) Cos(a *Tensor) *Tensor        { return s.unary("cos", cb.OpCos, a) }
func (s *Scope) SiLU(a *Tensor) *Tensor       { return s.unary("silu", cb.OpSiLU, a) }
func (s *Scope) GELU(a *Tensor) *Tensor       { return s.unary("gelu", cb.OpGELU, a) }
func (s *Scope) GELUTanh(a *Tensor) *Tensor   { return s.unary("gelu", cb.OpGELUTanh, a) }
func (s *Scope) Sigmoid(a *Tensor) *Tensor    { return s.unary("sigmoid", cb.OpSigmoid, a) }
func (s *Scope) Tanh(a *Tensor) *Tensor       { return s.unary("tanh", cb.OpTanh, a) }
func (s *Scope) ReLU(a *Tensor) *Tensor       { return s.unary("relu", cb.OpReLU, a) }
func (s *Scope) Abs(a *Tensor) *Tensor        { return s.unary("abs", cb.OpAbs, a) }
func (s *Scope) Square(a *Tensor) *Tensor     { return s.unary("square", cb.OpSquare, a) }
func (s *Scope) Contiguous(a *Tensor) *Tensor { return s.unary("contiguous", cb.OpContiguous, a) }
func (s *Scope) Clone(a *Tensor) *Tensor      { return s.unary("clone", cb.OpClone, a) }
func (s *Scope) Detach(a *Tensor) *Tensor     { return s.unary("detach", cb.OpDetach, a) }

// ChannelsLast copies a 4-d [N, C, H, W] (or 5-d [N, C, D, H, W]) tensor
// into the channels-last layout (NHWC, NDHWC in memory; same shape), or
// returns it when it already is. Convolutions, GroupNorm and elementwise
// operations keep the layout; Contiguous restores the default one.
func (s *Scope) ChannelsLast(a *Tensor) *Tensor {
	return s.unary("channels_last", cb.OpChannelsLast, a)
}

// Broadcasting arithmetic.
func (s *Scope) Add(a, b *Tensor) *Tensor     { return s.binary("add", cb.OpAdd, a, b) }
func (s *Scope) Sub(a, b *Tensor) *Tensor     { return s.binary("sub", cb.OpSub, a, b) }
func (s *Scope) Mul(a, b *Tensor) *Tensor     { return s.binary("mul", cb.OpMul, a, b) }
func (s *Scope) Div(a, b *Tensor) *Tensor     { return s.binary("div", cb.OpDiv, a, b) }
func (s *Scope) Matmul(a, b *Tensor) *Tensor  { return s.binary("matmul", cb.OpMatmul, a, b) }
func (s *Scope) Maximum(a, b *Tensor) *Tensor { return s.binary("maximum", cb.OpMaximum, a, b) }
func (s *Scope) Minimum(a, b *Tensor) *Tensor { return s.binary("minimum", cb.OpMinimum, a, b) }
func (s *Scope) Pow(a, b *Tensor) *Tensor     { return s.binary("pow", cb.OpPow, a, b) }

// Tensor-number arithmetic.
func (s *Scope) AddScalar(a *Tensor, v float64) *Tensor { return s.scalar("add", cb.OpAddScalar, a, v) }
func (s *Scope) MulScalar(a *Tensor, v float64) *Tensor { return s.scalar("mul", cb.OpMulScalar, a, v) }
func (s *Scope) PowScalar(a *Tensor, v float64) *Tensor { return s.scalar("pow", cb.OpPowScalar, a, v) }
func (s *Scope) RSub(v float64, a *Tensor) *Tensor      { return s.scalar("rsub", cb.OpScalarSub, a, v) }
func (s *Scope) RDiv(v float64, a *Tensor) *Tensor      { return s.scalar("rdiv", cb.OpScalarDiv, a, v) }
func (s *Scope) ClampMin(a *Tensor, v float64) *Tensor  { return s.scalar("clamp", cb.OpClampMin, a, v) }
func (s *Scope) ClampMax(a *Tensor, v float64) *Tensor  { return s.scalar("clamp", cb.OpClampMax, a, v) }
func (s *Scope) LeakyReLU(a *Tensor, slope float64) *Tensor {
	return s.scalar("leaky_relu", cb.OpLeakyReLU, a, slope)
}

// Reductions over dims (all dimensions when dims is empty).
func (s *Scope) Sum(a *Tensor, keepDim bool, dims ...int64) *Tensor {
	h, err := cb.Reduce(cb.RedSum, a.handle(), dims, keepDim)
	return s.wrap("sum", h, err)
}

func (s *Scope) Mean(a *Tensor, keepDim bool, dims ...int64) *Tensor {
	h, err := cb.Reduce(cb.RedMean, a.handle(), dims, keepDim)
	return s.wrap("mean", h, err)
}

func (s *Scope) Amax(a *Tensor, keepDim bool, dims ...int64) *Tensor {
	h, err := cb.Reduce(cb.RedMax, a.handle(), dims, keepDim)
	return s.wrap("amax", h, err)
}

// Lerp is start + weight·(end − start), one kernel.
func (s *Scope) Lerp(start, end, weight *Tensor) *Tensor {
	h, err := cb.Lerp(start.handle(), end.handle(), weight.handle())
	return s.wrap("lerp", h, err)
}

// Where selects a where cond holds, b elsewhere.
func (s *Scope) Where(cond, a, b *Tensor) *Tensor {
	h, err := cb.Where(cond.handle(), a.handle(), b.handle())
	return s.wrap("where", h, err)
}

// Softmax along dim.
func (s *Scope) Softmax(a *Tensor, dim int64) *Tensor {
	h, err := cb.Softmax(a.handle(), dim)
	return s.wrap("softmax", h, err)
}

// Reshape (one size may be -1).
func (s *Scope) Reshape(a *Tensor, shape ...int64) *Tensor {
	h, err := cb.Reshape(a.handle(), shape)
	return s.wrap("reshape", h, err)
}

// Permute reorders dimensions (a view).
func (s *Scope) Permute(a *Tensor, dims ...int64) *Tensor {
	h, err := cb.Permute(a.handle(), dims)
	return s.wrap("permute", h, err)
}

// Transpose swaps two dimensions (a view).
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

// Expand broadcasts size-1 dimensions (a view; -1 keeps a size).
func (s *Scope) Expand(a *Tensor, shape ...int64) *Tensor {
	h, err := cb.Expand(a.handle(), shape)
	return s.wrap("expand", h, err)
}

// Slice takes start:end (step 1) along dim (a view).
func (s *Scope) Slice(a *Tensor, dim int, start, end int64) *Tensor {
	h, err := cb.Slice(a.handle(), int64(dim), start, end, 1)
	return s.wrap("slice", h, err)
}

// Select takes index i along dim and drops that dimension.
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

// Chunk splits dim into n equal parts (views).
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

// Cat concatenates along dim.
func (s *Scope) Cat(dim int, ts ...*Tensor) *Tensor {
	hs := make([]cb.Tensor, len(ts))
	for i, t := range ts {
		hs[i] = t.handle()
	}
	h, err := cb.Cat(hs, int64(dim))
	return s.wrap("cat", h, err)
}

// RepeatInterleave repeats each slice along dim n times.
func (s *Scope) RepeatInterleave(a *Tensor, n int64, dim int) *Tensor {
	h, err := cb.RepeatInterleave(a.handle(), n, int64(dim))
	return s.wrap("repeat_interleave", h, err)
}

// Cast converts dtype, keeping the device. When a already has dtype it
// returns a itself (no copy): do not Drop the result separately from a.
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

// Scalar makes a 0-d tensor like a (dtype and device).
func (s *Scope) Scalar(like *Tensor, v float64) *Tensor {
	t, err := Full(s, nil, v, like.DType(), like.Device())
	if err != nil {
		fail("full", err)
	}
	return t
}

// Filled makes a tensor of shape filled with v, with like's dtype and device.
func (s *Scope) Filled(like *Tensor, v float64, shape ...int64) *Tensor {
	t, err := Full(s, shape, v, like.DType(), like.Device())
	if err != nil {
		fail("full", fmt.Errorf("shape %v: %w", shape, err))
	}
	return t
}
