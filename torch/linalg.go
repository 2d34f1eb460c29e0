package torch

import (
	"fmt"
	"unsafe"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// EigH is the eigendecomposition of symmetric (Hermitian) matrices a
// [..., n, n], read from their lower triangles, as PyTorch's
// torch.linalg.eigh: the eigenvalues [..., n] in ascending order and the
// orthonormal eigenvectors [..., n, n] as columns, both owned by s. Use a
// float64 a where the smallest eigenvalues matter. A matrix that is not
// square panics with *Error, like the other operations.
func (s *Scope) EigH(a *Tensor) (values, vectors *Tensor) {
	w, v, err := cb.EigH(a.handle(), true)
	if err != nil {
		fail("linalg_eigh", err)
	}
	if s != nil && s.closed {
		cb.Free(w)
		cb.Free(v)
		fail("scope", errClosed)
	}
	return newTensor(s, w), newTensor(s, v)
}

// EigvalsH is the eigenvalues [..., n] of symmetric matrices a [..., n, n]
// in ascending order, as PyTorch's torch.linalg.eigvalsh (EigH without the
// eigenvectors).
func (s *Scope) EigvalsH(a *Tensor) *Tensor {
	w, _, err := cb.EigH(a.handle(), false)
	return s.wrap("linalg_eigvalsh", w, err)
}

// FromFloat64 copies Go data (row-major, exactly the shape's element count)
// into a new tensor of the given shape, converted to dtype on dev, owned by
// s (the caller when s is nil). Its errors are FromFloat32's.
func FromFloat64(s *Scope, data []float64, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	n, err := shapeNumel(shape)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%d values do not fill shape %v (%d elements)", len(data), shape, n)
	}
	if n == 0 {
		return Zeros(s, shape, dtype, dev)
	}
	return fromBlob(s, unsafe.Pointer(&data[0]), shape, Float64, dtype, dev)
}

// Float64s copies the tensor's elements, row-major, into Go memory as
// float64 (converted from its dtype, from any device). A nil or released
// tensor is an error.
func (t *Tensor) Float64s() ([]float64, error) { return copyOut[float64](t, "float64s", Float64) }
