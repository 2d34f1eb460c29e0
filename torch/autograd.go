package torch

import (
	"fmt"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Autograd: operations on tensors that require gradients record a graph;
// Backward fills the leaves' gradients. There is no global no-grad mode:
// stop a gradient with Scope.Detach, and keep frozen weights without
// requires-grad.

// SetRequiresGrad marks a leaf tensor as trainable (or not).
func (t *Tensor) SetRequiresGrad(on bool) error {
	if err := cb.SetRequiresGrad(t.handle(), on); err != nil {
		return err
	}
	if t.info != nil {
		t.info.RequiresGrad = on
	}
	return nil
}

// RequiresGrad reports whether t records operations for autograd.
func (t *Tensor) RequiresGrad() bool {
	info, err := cb.Describe(t.handle())
	return err == nil && info.RequiresGrad
}

// Backward accumulates d(loss)/d(leaf) into every leaf that requires it;
// loss must have one element. PyTorch runs the backward pass in the order
// of per-OS-thread sequence numbers given as the graph is built: for
// gradients that are identical from run to run, build the graph and call
// Backward with the goroutine locked to its thread (runtime.LockOSThread).
func Backward(loss *Tensor) error {
	if err := cb.Backward(loss.handle(), cb.Tensor{}); err != nil {
		return fmt.Errorf("backward: %w", err)
	}
	return nil
}

// Grad returns t's accumulated gradient as a new tensor owned by s, or nil
// when it has none.
func (t *Tensor) Grad(s *Scope) (*Tensor, error) {
	h, err := cb.Grad(t.handle())
	if err != nil || h.Nil() {
		return nil, err
	}
	return newTensor(s, h), nil
}

// ZeroGrad drops t's accumulated gradient.
func (t *Tensor) ZeroGrad() error { return cb.ZeroGrad(t.handle()) }
