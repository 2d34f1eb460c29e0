package cbridge

// #include "cbridge.h"
import "C"

// SetRequiresGrad marks a leaf tensor as needing gradients (or not).
func SetRequiresGrad(t Tensor, on bool) error { return status(C.osv_set_requires_grad(t.p, cbool(on))) }

// Backward accumulates gradients of loss into the leaves that require them;
// grad is the null handle for a one-element loss.
func Backward(loss, grad Tensor) error { return status(C.osv_backward(loss.p, grad.p)) }

// Grad is t's accumulated gradient, or the null handle when it has none.
func Grad(t Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_grad(t.p, &out))
}

// ZeroGrad drops t's accumulated gradient.
func ZeroGrad(t Tensor) error { return status(C.osv_zero_grad(t.p)) }
