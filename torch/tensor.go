package torch

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"github.com/onestepvideo/osv-go/internal/cbridge"
)

// Tensor is a handle to a native (libtorch) tensor. A tensor is owned
// either by a Scope (released when the scope closes) or by whoever made it
// with a nil scope (released by Free). A cleanup releases a tensor that
// becomes unreachable without either, as a safety net only: the Go garbage
// collector does not see native memory. A tensor is not safe for concurrent
// use. The zero value and nil are not tensors: every function given one
// reports an error (or, for the methods without an error result and the
// Scope operations, panics with *Error).
type Tensor struct {
	h       cbridge.Tensor
	owner   *Scope
	info    *cbridge.Info
	cleanup runtime.Cleanup
}

// newTensor wraps a new handle, owned by s (the caller when s is nil); a
// closed s frees it and panics with *Error. Functions that return an error
// use own instead.
func newTensor(s *Scope, h cbridge.Tensor) *Tensor {
	t := &Tensor{h: h}
	t.cleanup = runtime.AddCleanup(t, cbridge.Free, h)
	if s != nil {
		s.adopt(t)
	}
	return t
}

// own is newTensor for functions that return an error: a closed s is an
// error, and the handle is freed.
func own(s *Scope, h cbridge.Tensor) (*Tensor, error) {
	if s != nil && s.closed {
		cbridge.Free(h)
		return nil, &Error{Op: "scope", Err: errClosed}
	}
	return newTensor(s, h), nil
}

// live reports the first nil or released tensor of ts as an error of op.
func live(op string, ts ...*Tensor) error {
	for _, t := range ts {
		if t.Released() {
			return &Error{Op: op, Err: errReleased}
		}
	}
	return nil
}

// Free releases the tensor's native handle now, whoever owns it, and
// leaves t released; its storage goes with the last handle (a view or a
// gotorch tensor may share it). It is safe to call twice, and on nil.
func (t *Tensor) Free() {
	if t == nil || t.h.Nil() {
		return
	}
	t.cleanup.Stop()
	cbridge.Free(t.h)
	t.h = cbridge.Tensor{}
	t.owner = nil
	t.info = nil
}

// Released reports whether the tensor was freed (true for nil).
func (t *Tensor) Released() bool { return t == nil || t.h.Nil() }

func (t *Tensor) handle() cbridge.Tensor {
	if t == nil || t.h.Nil() {
		fail("tensor", errReleased)
	}
	return t.h
}

// handleOrNil is the null handle for a nil tensor (optional arguments).
func handleOrNil(t *Tensor) cbridge.Tensor {
	if t == nil {
		return cbridge.Tensor{}
	}
	return t.handle()
}

// describe is t's cached description; it panics with *Error on a nil or
// released tensor.
func (t *Tensor) describe() *cbridge.Info {
	h := t.handle()
	if t.info == nil {
		info, err := cbridge.Describe(h)
		if err != nil {
			fail("describe", err)
		}
		t.info = &info
	}
	return t.info
}

// Shape is the tensor's shape (a copy; empty for a 0-d tensor). Like the
// other accessors without an error result (Strides, Dim, Size, Numel,
// DType, Device), it panics with *Error on a nil or released tensor.
func (t *Tensor) Shape() []int64 { return append([]int64(nil), t.describe().Shape...) }

// Strides are the tensor's strides in elements, one per dimension; it
// panics with *Error on a nil or released tensor.
func (t *Tensor) Strides() []int64 {
	st, err := cbridge.Strides(t.handle())
	if err != nil {
		fail("strides", err)
	}
	return st
}

// Dim is the rank (0 for a scalar); it panics with *Error on a nil or
// released tensor.
func (t *Tensor) Dim() int { return len(t.describe().Shape) }

// Size is the length of dimension i (negative counts from the end); it
// panics with *Error when i is out of range or the tensor is nil or
// released.
func (t *Tensor) Size(i int) int64 {
	s := t.describe().Shape
	if i < 0 {
		i += len(s)
	}
	if i < 0 || i >= len(s) {
		fail("size", fmt.Errorf("dimension %d out of range for shape %v", i, s))
	}
	return s[i]
}

// Numel is the number of elements (1 for a scalar); it panics with *Error
// on a nil or released tensor.
func (t *Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.describe().Shape {
		n *= d
	}
	return n
}

// DType is the element type; it panics with *Error on a nil or released
// tensor.
func (t *Tensor) DType() DType { return DType(t.describe().DType) }

// Device is where the tensor lives; it panics with *Error on a nil or
// released tensor.
func (t *Tensor) Device() Device {
	i := t.describe()
	if i.DevType == 1 {
		return CUDA(i.DevIndex)
	}
	return CPU
}

// String describes the tensor as Tensor([shape], dtype, device), or
// Tensor(released); it never panics.
func (t *Tensor) String() string {
	if t.Released() {
		return "Tensor(released)"
	}
	return fmt.Sprintf("Tensor(%v, %s, %s)", t.Shape(), t.DType(), t.Device())
}

// Live is the number of native tensors made by the engine, in this process,
// and not yet freed: tensors owned by open scopes, by callers and by
// optimisers (gotorch tensors are not counted). A leak test reads it before
// and after a computation and expects the same number.
func Live() int64 { return cbridge.Live() }

// shapeNumel is the element count of shape, or an error for a negative
// dimension or a count that overflows int64.
func shapeNumel(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// FromFloat32 copies Go data (row-major, exactly the shape's element count)
// into a new tensor of the given shape, converted to dtype on dev, owned by
// s (or by the caller when s is nil). A negative dimension, a length that
// does not match the shape, an unsupported dtype, a missing device or a
// closed scope is an error.
func FromFloat32(s *Scope, data []float32, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	n, err := shapeNumel(shape)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%d values do not fill shape %v (%d elements)", len(data), shape, n)
	}
	if n == 0 {
		return Zeros(s, shape, dtype, dev)
	}
	return fromBlob(s, unsafe.Pointer(&data[0]), shape, Float32, dtype, dev)
}

// FromUint8 copies bytes (row-major, exactly the shape's element count)
// into a new tensor of dtype on dev, owned by s (the caller when s is nil):
// 8-bit pixels, say, converted to float on the way (values 0..255, not
// scaled). Its errors are FromFloat32's.
func FromUint8(s *Scope, data []uint8, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	n, err := shapeNumel(shape)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%d bytes do not fill shape %v (%d elements)", len(data), shape, n)
	}
	if n == 0 {
		return Zeros(s, shape, dtype, dev)
	}
	return fromBlob(s, unsafe.Pointer(&data[0]), shape, Uint8, dtype, dev)
}

// fromBlob copies a contiguous buffer of src elements (Go or native memory,
// not retained) into a new tensor of dtype on dev.
func fromBlob(s *Scope, data unsafe.Pointer, shape []int64, src, dtype DType, dev Device) (*Tensor, error) {
	dt, di := dev.code()
	h, err := cbridge.FromBlob(data, shape, int(src), int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return own(s, h)
}

// Float32s copies the tensor's elements, row-major, into Go memory as
// float32 (converted from its dtype, from any device). A nil or released
// tensor is an error.
func (t *Tensor) Float32s() ([]float32, error) { return copyOut[float32](t, "float32s", Float32) }

// copyOut copies t's elements, converted to dtype (whose Go type is E),
// into Go memory, row-major.
func copyOut[E float32 | float64](t *Tensor, op string, dtype DType) ([]E, error) {
	if err := live(op, t); err != nil {
		return nil, err
	}
	h, err := cbridge.To(t.h, int(dtype), 0, 0)
	if err != nil {
		return nil, err
	}
	defer cbridge.Free(h)
	info, err := cbridge.Describe(h)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range info.Shape {
		n *= d
	}
	out := make([]E, n)
	if n == 0 {
		return out, nil
	}
	return out, cbridge.CopyOut(h, unsafe.Pointer(&out[0]), n*int64(unsafe.Sizeof(out[0])))
}

// Zeros makes a tensor of shape filled with zeros, of dtype on dev, owned
// by s (the caller when s is nil). Its errors are Full's.
func Zeros(s *Scope, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	return Full(s, shape, 0, dtype, dev)
}

// Full makes a tensor of shape (nil or empty: a 0-d scalar) filled with v,
// of dtype on dev, owned by s (the caller when s is nil). A negative
// dimension, an unsupported dtype, a missing device or a closed scope is an
// error.
func Full(s *Scope, shape []int64, v float64, dtype DType, dev Device) (*Tensor, error) {
	if _, err := shapeNumel(shape); err != nil {
		return nil, err
	}
	dt, di := dev.code()
	h, err := cbridge.Full(shape, v, int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return own(s, h)
}

// Arange is the 1-d tensor start, start+step, ... (values below end for a
// positive step, above it for a negative one), of dtype on dev, owned by s
// (the caller when s is nil). A zero step, a step of the wrong sign, an
// unsupported dtype, a missing device or a closed scope is an error.
func Arange(s *Scope, start, end, step float64, dtype DType, dev Device) (*Tensor, error) {
	dt, di := dev.code()
	h, err := cbridge.Arange(start, end, step, int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return own(s, h)
}

// To converts to dtype on dev; the result is a new handle owned by s (the
// caller when s is nil), recorded by autograd. When dtype and device
// already match, it shares t's storage (as PyTorch's Tensor.to does): use
// Scope.Clone for an independent copy. A nil or released t, an unsupported
// dtype, a missing device or a closed scope is an error.
func (t *Tensor) To(s *Scope, dtype DType, dev Device) (*Tensor, error) {
	if err := live("to", t); err != nil {
		return nil, err
	}
	dt, di := dev.code()
	h, err := cbridge.To(t.h, int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return own(s, h)
}

// Item is the value of a one-element tensor (of any shape), as float64. A
// tensor of another size, or a nil or released one, is an error.
func (t *Tensor) Item() (float64, error) {
	if err := live("item", t); err != nil {
		return 0, err
	}
	return cbridge.Item(t.h)
}

// bytes copies the tensor's raw elements (its own dtype) into Go memory.
func (t *Tensor) bytes() ([]byte, error) {
	out := make([]byte, t.Numel()*int64(t.DType().Size()))
	if len(out) == 0 {
		return out, nil
	}
	return out, cbridge.CopyOut(t.handle(), unsafe.Pointer(&out[0]), int64(len(out)))
}
