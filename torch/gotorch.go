package torch

import (
	"errors"
	"unsafe"

	"github.com/wangkuiyi/gotorch"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// ToGotorch hands t's storage to a new gotorch.Tensor without copying. The
// result is the caller's: Release frees it at once, otherwise gotorch's
// finalizer does when it becomes unreachable. t itself is unaffected.
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

// FromGotorch makes an engine tensor, owned by s, sharing g's storage.
func FromGotorch(s *Scope, g gotorch.Tensor) (*Tensor, error) {
	if g.T == nil || *g.T == nil {
		return nil, errors.New("nil or released gotorch tensor")
	}
	h, err := cb.Import(*g.T)
	if err != nil {
		return nil, err
	}
	return newTensor(s, h), nil
}

// Release frees gotorch tensors' native storage now (idempotent). The
// tensors must not be used afterwards.
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
