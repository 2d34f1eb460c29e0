package cbridge

// #cgo CXXFLAGS: -std=c++17 -O2 -Wno-deprecated-declarations
// #cgo LDFLAGS: -ltorch -ltorch_cpu -lc10 -lstdc++
// #include <stdlib.h>
// #include "cbridge.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// MaxDims is the largest rank a tensor may have across the bridge.
const MaxDims = C.OSV_MAX_DIMS

// Tensor is a handle to a native tensor. The zero value is the null handle.
type Tensor struct{ p *C.osv_tensor }

// Nil reports whether t is the null handle.
func (t Tensor) Nil() bool { return t.p == nil }

// Generator is a handle to a seeded random number generator.
type Generator struct{ p *C.osv_generator }

// status converts a returned message into an error and frees it.
func status(s *C.char) error {
	if s == nil {
		return nil
	}
	msg := C.GoString(s)
	C.free(unsafe.Pointer(s))
	return errors.New(msg)
}

func int64s(xs []int64) (*C.int64_t, C.int) {
	if len(xs) == 0 {
		return nil, 0
	}
	return (*C.int64_t)(unsafe.Pointer(&xs[0])), C.int(len(xs))
}

func checkRank(n int) error {
	if n > MaxDims {
		return fmt.Errorf("rank %d exceeds the maximum of %d", n, MaxDims)
	}
	return nil
}

// Free releases a handle; freeing the null handle does nothing.
func Free(t Tensor) { C.osv_free(t.p) }

// Live is the number of handles created and not yet freed.
func Live() int64 { return int64(C.osv_live()) }

// Version is libtorch's version, as compiled against.
func Version() (major, minor int) {
	var a, b C.int
	C.osv_version(&a, &b)
	return int(a), int(b)
}

// Info describes a tensor.
type Info struct {
	Shape        []int64
	DType        int
	DevType      int
	DevIndex     int
	RequiresGrad bool
}

// Describe returns the shape, dtype and device of t.
func Describe(t Tensor) (Info, error) {
	var shape [MaxDims]C.int64_t
	var nd, dt, devT, devI, rg C.int
	if err := status(C.osv_info(t.p, &shape[0], &nd, &dt, &devT, &devI, &rg)); err != nil {
		return Info{}, err
	}
	info := Info{Shape: make([]int64, int(nd)), DType: int(dt), DevType: int(devT), DevIndex: int(devI), RequiresGrad: rg != 0}
	for i := range info.Shape {
		info.Shape[i] = int64(shape[i])
	}
	return info, nil
}

// Strides reports a tensor's strides in elements.
func Strides(t Tensor) ([]int64, error) {
	var st [MaxDims]C.int64_t
	var nd C.int
	if err := status(C.osv_strides(t.p, &st[0], &nd)); err != nil {
		return nil, err
	}
	out := make([]int64, int(nd))
	for i := range out {
		out[i] = int64(st[i])
	}
	return out, nil
}

// FromBlob copies memory laid out as a contiguous tensor of srcDType into a
// new tensor of dtype on the given device. data may be Go or native memory;
// it is not retained.
func FromBlob(data unsafe.Pointer, shape []int64, srcDType, dtype, devType, devIndex int) (Tensor, error) {
	if err := checkRank(len(shape)); err != nil {
		return Tensor{}, err
	}
	var out *C.osv_tensor
	s, n := int64s(shape)
	err := status(C.osv_from_blob(data, s, n, C.int(srcDType), C.int(dtype), C.int(devType), C.int(devIndex), &out))
	return Tensor{out}, err
}

// CopyOut copies the tensor's elements, row-major, into dst (exactly its size in bytes).
func CopyOut(t Tensor, dst unsafe.Pointer, nbytes int64) error {
	return status(C.osv_copy_out(t.p, dst, C.int64_t(nbytes)))
}

// To converts t to dtype on a device.
func To(t Tensor, dtype, devType, devIndex int) (Tensor, error) {
	var out *C.osv_tensor
	err := status(C.osv_to(t.p, C.int(dtype), C.int(devType), C.int(devIndex), &out))
	return Tensor{out}, err
}

// Full makes a tensor filled with value.
func Full(shape []int64, value float64, dtype, devType, devIndex int) (Tensor, error) {
	if err := checkRank(len(shape)); err != nil {
		return Tensor{}, err
	}
	var out *C.osv_tensor
	s, n := int64s(shape)
	err := status(C.osv_full(s, n, C.double(value), C.int(dtype), C.int(devType), C.int(devIndex), &out))
	return Tensor{out}, err
}

// Arange is the 1-D tensor start, start+step, ... below end.
func Arange(start, end, step float64, dtype, devType, devIndex int) (Tensor, error) {
	var out *C.osv_tensor
	err := status(C.osv_arange(C.double(start), C.double(end), C.double(step), C.int(dtype), C.int(devType), C.int(devIndex), &out))
	return Tensor{out}, err
}

// Item is the value of a one-element tensor.
func Item(t Tensor) (float64, error) {
	var v C.double
	err := status(C.osv_item(t.p, &v))
	return float64(v), err
}

// Export makes a new at::Tensor* sharing t's storage, owned by the caller
// and not counted by Live; release it with DeleteExported.
func Export(t Tensor) (unsafe.Pointer, error) {
	var out unsafe.Pointer
	err := status(C.osv_export(t.p, &out))
	return out, err
}

// Import makes a handle sharing the storage of an at::Tensor*.
func Import(p unsafe.Pointer) (Tensor, error) {
	var out *C.osv_tensor
	err := status(C.osv_import(p, &out))
	return Tensor{out}, err
}

// DeleteExported releases an at::Tensor* made by Export (or by gotorch).
func DeleteExported(p unsafe.Pointer) { C.osv_delete_exported(p) }

// NewGenerator makes a generator seeded with seed.
func NewGenerator(seed uint64) (Generator, error) {
	var out *C.osv_generator
	err := status(C.osv_generator_new(C.uint64_t(seed), &out))
	return Generator{out}, err
}

// NewDeviceGenerator makes a generator that draws on a device of its own
// (CUDA's Philox generator; the CPU generator for the CPU).
func NewDeviceGenerator(seed uint64, devType, devIndex int) (Generator, error) {
	var out *C.osv_generator
	err := status(C.osv_generator_new_device(C.uint64_t(seed), C.int(devType), C.int(devIndex), &out))
	return Generator{out}, err
}

// FreeGenerator releases g.
func FreeGenerator(g Generator) { C.osv_generator_free(g.p) }

// Randn draws standard normal numbers (uniform in [0,1) when uniform is set).
func Randn(g Generator, uniform bool, shape []int64, dtype, devType, devIndex int) (Tensor, error) {
	if err := checkRank(len(shape)); err != nil {
		return Tensor{}, err
	}
	var out *C.osv_tensor
	s, n := int64s(shape)
	var st *C.char
	if uniform {
		st = C.osv_rand(g.p, s, n, C.int(dtype), C.int(devType), C.int(devIndex), &out)
	} else {
		st = C.osv_randn(g.p, s, n, C.int(dtype), C.int(devType), C.int(devIndex), &out)
	}
	return Tensor{out}, status(st)
}
