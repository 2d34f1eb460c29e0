package torch

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/onestepvideo/osv-go/internal/cbridge"
)

// Tensor is a native tensor handle. A tensor is owned either by a Scope
// (released when the scope closes) or by whoever made it with a nil scope
// (released by Free). A cleanup releases a tensor that becomes unreachable
// without either, as a safety net only.
type Tensor struct {
	h       cbridge.Tensor
	owner   *Scope
	info    *cbridge.Info
	cleanup runtime.Cleanup
}

func newTensor(s *Scope, h cbridge.Tensor) *Tensor {
	t := &Tensor{h: h}
	t.cleanup = runtime.AddCleanup(t, cbridge.Free, h)
	if s != nil {
		s.adopt(t)
	}
	return t
}

// Free releases the tensor now. It is safe to call twice.
func (t *Tensor) Free() {
	if t == nil || t.h.Nil() {
		return
	}
	t.cleanup.Stop()
	cbridge.Free(t.h)
	t.h = cbridge.Tensor{}
	t.owner = nil
}

// Released reports whether the tensor was freed.
func (t *Tensor) Released() bool { return t == nil || t.h.Nil() }

func (t *Tensor) handle() cbridge.Tensor {
	if t == nil || t.h.Nil() {
		fail("tensor", fmt.Errorf("use of a released or nil tensor"))
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

func (t *Tensor) describe() *cbridge.Info {
	if t.info == nil {
		info, err := cbridge.Describe(t.handle())
		if err != nil {
			fail("describe", err)
		}
		t.info = &info
	}
	return t.info
}

// Shape is the tensor's shape (a copy).
func (t *Tensor) Shape() []int64 { return append([]int64(nil), t.describe().Shape...) }

// Strides are the tensor's strides in elements, one per dimension.
func (t *Tensor) Strides() []int64 {
	st, err := cbridge.Strides(t.handle())
	if err != nil {
		fail("strides", err)
	}
	return st
}

// Dim is the rank.
func (t *Tensor) Dim() int { return len(t.describe().Shape) }

// Size is the length of dimension i (negative counts from the end).
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

// Numel is the number of elements.
func (t *Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.describe().Shape {
		n *= d
	}
	return n
}

// DType is the element type.
func (t *Tensor) DType() DType { return DType(t.describe().DType) }

// Device is where the tensor lives.
func (t *Tensor) Device() Device {
	i := t.describe()
	if i.DevType == 1 {
		return CUDA(i.DevIndex)
	}
	return CPU
}

func (t *Tensor) String() string {
	if t.Released() {
		return "Tensor(released)"
	}
	return fmt.Sprintf("Tensor(%v, %s, %s)", t.Shape(), t.DType(), t.Device())
}

// Live is the number of native tensors made by the engine and not yet freed.
func Live() int64 { return cbridge.Live() }

// FromFloat32 copies Go data into a new tensor of the given shape, dtype and
// device, owned by s (or by the caller when s is nil).
func FromFloat32(s *Scope, data []float32, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= d
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%d values do not fill shape %v (%d elements)", len(data), shape, n)
	}
	if n == 0 {
		return Zeros(s, shape, dtype, dev)
	}
	return fromBlob(s, unsafe.Pointer(&data[0]), shape, Float32, dtype, dev)
}

// FromUint8 copies bytes (row-major, shape's element count) into a new
// tensor of dtype on dev: 8-bit pixels, say, converted to float on the way.
func FromUint8(s *Scope, data []uint8, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= d
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
	return newTensor(s, h), nil
}

// Float32s copies the tensor's elements, row-major, into Go memory as float32.
func (t *Tensor) Float32s() ([]float32, error) {
	h, err := cbridge.To(t.h, int(Float32), 0, 0)
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
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}
	return out, cbridge.CopyOut(h, unsafe.Pointer(&out[0]), n*4)
}

// Zeros makes a zero tensor.
func Zeros(s *Scope, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	return Full(s, shape, 0, dtype, dev)
}

// Full makes a tensor filled with v.
func Full(s *Scope, shape []int64, v float64, dtype DType, dev Device) (*Tensor, error) {
	dt, di := dev.code()
	h, err := cbridge.Full(shape, v, int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return newTensor(s, h), nil
}

// Arange is start, start+step, ... below end.
func Arange(s *Scope, start, end, step float64, dtype DType, dev Device) (*Tensor, error) {
	dt, di := dev.code()
	h, err := cbridge.Arange(start, end, step, int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return newTensor(s, h), nil
}

// To converts to dtype on dev; the result is a new handle owned by s. When
// dtype and device already match, it shares t's storage (as PyTorch's
// Tensor.to does): use Scope.Clone for an independent copy.
func (t *Tensor) To(s *Scope, dtype DType, dev Device) (*Tensor, error) {
	dt, di := dev.code()
	h, err := cbridge.To(t.handle(), int(dtype), dt, di)
	if err != nil {
		return nil, err
	}
	return newTensor(s, h), nil
}

// Item is the value of a one-element tensor.
func (t *Tensor) Item() (float64, error) { return cbridge.Item(t.handle()) }

// bytes copies the tensor's raw elements (its own dtype) into Go memory.
func (t *Tensor) bytes() ([]byte, error) {
	out := make([]byte, t.Numel()*int64(t.DType().Size()))
	if len(out) == 0 {
		return out, nil
	}
	return out, cbridge.CopyOut(t.handle(), unsafe.Pointer(&out[0]), int64(len(out)))
}
