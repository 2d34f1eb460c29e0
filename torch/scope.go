package torch

// Scope owns the tensors made inside it and releases them all at Close. A
// layer opens a child scope for its intermediates and moves only its result
// out with Keep. A scope belongs to one goroutine at a time.
type Scope struct {
	parent  *Scope
	tensors []*Tensor
	closed  bool
}

// NewScope opens a root scope.
func NewScope() *Scope { return &Scope{} }

// Child opens a scope whose Keep moves tensors into s.
func (s *Scope) Child() *Scope { return &Scope{parent: s} }

func (s *Scope) adopt(t *Tensor) {
	if s.closed {
		t.Free()
		fail("scope", errClosed)
	}
	t.owner = s
	s.tensors = append(s.tensors, t)
}

// Keep moves t out of s into its parent scope (for a root scope: to the
// caller, who then releases it with Free) and returns t.
func (s *Scope) Keep(t *Tensor) *Tensor {
	if t == nil || t.owner != s {
		return t
	}
	t.owner = nil
	if s.parent != nil {
		s.parent.adopt(t)
	}
	return t
}

// Adopt moves a tensor (owned by the caller or another scope) into s.
func (s *Scope) Adopt(t *Tensor) *Tensor {
	if t != nil && t.owner != s {
		s.adopt(t)
	}
	return t
}

// Drop releases, now, those of ts that s owns (the rest are left alone),
// so that a long layer frees its dead intermediates as it goes. A view
// shares storage with its base; the storage goes when its last handle does.
func (s *Scope) Drop(ts ...*Tensor) {
	for _, t := range ts {
		if t != nil && t.owner == s {
			t.Free()
		}
	}
}

// Close releases every tensor still owned by s. It is safe to call twice.
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
