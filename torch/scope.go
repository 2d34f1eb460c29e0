package torch

// Scope owns the tensors made inside it and releases them all at Close. A
// layer opens a child scope for its intermediates and moves only its result
// out with Keep. A nil *Scope stands for the caller: tensors made with it
// are the caller's to Free. The zero value is an open root scope. A scope,
// and its tensors, belong to one goroutine at a time.
//
// The operation methods (Add, Conv, SDPA, ...) make a new tensor owned by
// s and report failure by panicking with *Error; see the package
// documentation for how to recover.
type Scope struct {
	parent  *Scope
	tensors []*Tensor
	closed  bool
}

// NewScope opens a root scope: Keep on it hands tensors to the caller.
func NewScope() *Scope { return &Scope{} }

// Child opens a scope whose Keep moves tensors into s. Closing s does not
// close the child: close it first.
func (s *Scope) Child() *Scope { return &Scope{parent: s} }

func (s *Scope) adopt(t *Tensor) {
	if s.closed {
		t.Free()
		fail("scope", errClosed)
	}
	t.owner = s
	s.tensors = append(s.tensors, t)
}

// Keep moves t out of s into its parent scope (for a root scope, or a nil
// s: to the caller, who then releases it with Free) and returns t. A tensor
// s does not own, or nil, is returned unchanged. It panics with *Error, and
// frees t, when the parent is closed.
func (s *Scope) Keep(t *Tensor) *Tensor {
	if s == nil || t == nil || t.owner != s {
		return t
	}
	t.owner = nil
	if s.parent != nil {
		s.parent.adopt(t)
	}
	return t
}

// Adopt moves a tensor owned by the caller or by another scope into s and
// returns it; for a nil s it hands the tensor to the caller. nil is
// returned unchanged. It panics with *Error, and frees t, when s is closed.
func (s *Scope) Adopt(t *Tensor) *Tensor {
	if t == nil || t.owner == s {
		return t
	}
	if s == nil {
		t.owner = nil
		return t
	}
	s.adopt(t)
	return t
}

// Drop releases, now, those of ts that s owns (the rest, and nils, are left
// alone), so that a long layer frees its dead intermediates as it goes; for
// a nil s, those the caller owns. A view shares storage with its base; the
// storage goes when its last handle does.
func (s *Scope) Drop(ts ...*Tensor) {
	for _, t := range ts {
		if t != nil && t.owner == s {
			t.Free()
		}
	}
}

// Close releases every tensor still owned by s; operations on s afterwards
// panic with *Error, and functions given s return an error. It is safe to
// call twice, and on nil.
func (s *Scope) Close() {
	if s == nil || s.closed {
		return
	}
	s.closed = true
	for _, t := range s.tensors {
		if t.owner == s {
			t.Free()
		}
	}
	s.tensors = nil
}

type scopeError string

func (e scopeError) Error() string { return string(e) }

const errClosed = scopeError("tensor made in a closed scope")
