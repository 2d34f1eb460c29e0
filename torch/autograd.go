package torch

import (
	"fmt"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Autograd: operations on tensors that require gradients record a graph;
// Backward fills the leaves' gradients. There is no global no-grad mode:
// stop a gradient with Scope.Detach, and keep frozen weights without
// requires-grad.

// SetRequiresGrad marks a leaf tensor as trainable (or not): operations on
// it then record a graph for Backward. A nil or released tensor, or a
// non-leaf one (the result of an operation on a trainable tensor) being
// turned off, is an error; so is turning it on for a tensor that is not of
// a floating-point dtype.
func (t *Tensor) SetRequiresGrad(on bool) error {
	if err := live("set_requires_grad", t); err != nil {
		return err
	}
	if err := cb.SetRequiresGrad(t.h, on); err != nil {
		return err
	}
	if t.info != nil {
		t.info.RequiresGrad = on
	}
	return nil
}

// RequiresGrad reports whether t records operations for autograd (false
// for a nil or released tensor).
func (t *Tensor) RequiresGrad() bool {
	if t.Released() {
		return false
	}
	info, err := cb.Describe(t.h)
	return err == nil && info.RequiresGrad
}

// Backward accumulates d(loss)/d(leaf) into every leaf that requires it
// (read them with Grad); loss must have one element and depend on such a
// leaf. The tensors the graph saved are freed afterwards: run the forward
// pass again before another Backward. A nil or released loss is an error,
// and so is whatever libtorch reports. PyTorch runs the backward pass in the order of per-OS-thread
// sequence numbers given as the graph is built: for gradients that are
// identical from run to run, build the graph and call Backward with the
// goroutine locked to its thread (runtime.LockOSThread).
func Backward(loss *Tensor) error {
	if err := live("backward", loss); err != nil {
		return err
	}
	if err := cb.Backward(loss.h, cb.Tensor{}); err != nil {
		return fmt.Errorf("backward: %w", err)
	}
	return nil
}

// Grad returns t's accumulated gradient (t's shape) as a new tensor owned
// by s (the caller when s is nil) that shares the gradient's storage, or
// nil and no error when t has none. A nil or released t, or a closed scope,
// is an error.
func (t *Tensor) Grad(s *Scope) (*Tensor, error) {
	if err := live("grad", t); err != nil {
		return nil, err
	}
	h, err := cb.Grad(t.h)
	if err != nil || h.Nil() {
		return nil, err
	}
	return own(s, h)
}

// ZeroGrad drops t's accumulated gradient, so that the next Backward starts
// from none. A nil or released tensor is an error.
func (t *Tensor) ZeroGrad() error {
	if err := live("zero_grad", t); err != nil {
		return err
	}
	return cb.ZeroGrad(t.h)
}
