package torch

import (
	"errors"
	"unsafe"

	"github.com/wangkuiyi/gotorch"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// ToGotorch hands t's storage to a new gotorch.Tensor without copying
// (writes through either are seen by both). The result is the caller's:
// Release frees it at once, otherwise gotorch's finalizer does when it
// becomes unreachable (Live does not count it). t itself is unaffected,
// and may be freed first. A nil or released t is an error.
func ToGotorch(t *Tensor) (gotorch.Tensor, error) {
	if t.Released() {
		return gotorch.Tensor{}, errors.New("gotorch: released tensor")
	}
	p, err := cb.Export(t.h)
	if err != nil {
		return gotorch.Tensor{}, err
	}
	cell := new(unsafe.Pointer)
	*cell = p
	gotorch.SetTensorFinalizer(cell)
	return gotorch.Tensor{T: cell}, nil
}

// FromGotorch makes an engine tensor, owned by s (the caller when s is
// nil), sharing g's storage without copying; g stays the caller's. A zero,
// undefined or released g, or a closed scope, is an error.
func FromGotorch(s *Scope, g gotorch.Tensor) (*Tensor, error) {
	if g.T == nil || *g.T == nil {
		return nil, errors.New("nil or released gotorch tensor")
	}
	h, err := cb.Import(*g.T)
	if err != nil {
		return nil, err
	}
	return own(s, h)
}

// Release frees gotorch tensors' native handles now (idempotent; zero
// tensors are skipped); storage still shared with an engine tensor lives
// on until that is freed too. The gotorch tensors must not be used
// afterwards.
func Release(gs ...gotorch.Tensor) {
	for _, g := range gs {
		if g.T == nil || *g.T == nil {
			continue
		}
		p := *g.T
		*g.T = nil // gotorch's finalizer then frees nothing
		cb.DeleteExported(p)
	}
}
