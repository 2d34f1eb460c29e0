package cbridge

// #include <stdlib.h>
// #include "cbridge.h"
import "C"

import (
	"errors"
	"unsafe"
)

// Module is a handle to a TorchScript module. The zero value is the null
// handle.
type Module struct{ p *C.osv_module }

// Nil reports whether m is the null handle.
func (m Module) Nil() bool { return m.p == nil }

// Keyword argument kinds of ScriptCall.
const (
	KwBool = iota
	KwInt
	KwFloat
)

// ScriptLoad reads a TorchScript file (torch.jit.save's format) with its
// tensors placed on a device, in eval mode.
func ScriptLoad(path string, devType, devIndex int) (Module, error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	var out *C.osv_module
	err := status(C.osv_script_load(cs, C.int(devType), C.int(devIndex), &out))
	return Module{out}, err
}

// ScriptFree releases a module; freeing the null handle does nothing.
func ScriptFree(m Module) { C.osv_script_free(m.p) }

// ScriptSignature describes a method's schema in the text form of
// osv_script_signature (cbridge.h).
func ScriptSignature(m Module, method string) (string, error) {
	cs := C.CString(method)
	defer C.free(unsafe.Pointer(cs))
	var out *C.char
	if err := status(C.osv_script_signature(m.p, cs, &out)); err != nil {
		return "", err
	}
	s := C.GoString(out)
	C.free(unsafe.Pointer(out))
	return s, nil
}

// ScriptCall runs a method on positional tensors and keyword arguments
// (names, kinds Kw*, values as float64), without recording gradients; the
// result must be a tensor.
func ScriptCall(m Module, method string, args []Tensor, kwNames []string, kwKinds []int, kwValues []float64) (Tensor, error) {
	if len(kwKinds) != len(kwNames) || len(kwValues) != len(kwNames) {
		return Tensor{}, errors.New("script call: keyword names, kinds and values differ in length")
	}
	cm := C.CString(method)
	defer C.free(unsafe.Pointer(cm))
	// Go slices of C pointers and numbers hold no Go pointers, so C may
	// read them during the call.
	var argp **C.osv_tensor
	ts := make([]*C.osv_tensor, len(args))
	for i, t := range args {
		ts[i] = t.p
	}
	if len(ts) > 0 {
		argp = &ts[0]
	}
	n := len(kwNames)
	names := make([]*C.char, n)
	kinds := make([]C.int, n)
	values := make([]C.double, n)
	for i := range n {
		names[i] = C.CString(kwNames[i])
		kinds[i] = C.int(kwKinds[i])
		values[i] = C.double(kwValues[i])
	}
	defer func() {
		for _, s := range names {
			C.free(unsafe.Pointer(s))
		}
	}()
	var np **C.char
	var kp *C.int
	var vp *C.double
	if n > 0 {
		np, kp, vp = &names[0], &kinds[0], &values[0]
	}
	var out *C.osv_tensor
	err := status(C.osv_script_call(m.p, cm, argp, C.int(len(ts)), np, kp, vp, C.int(n), &out))
	return Tensor{out}, err
}
