package cbridge

// #include "cbridge.h"
import "C"

// EigH returns the eigenvalues (ascending) of symmetric matrices [..., n, n]
// and, when vectors is set, their eigenvectors as columns (otherwise the
// null handle).
func EigH(a Tensor, vectors bool) (values, vecs Tensor, err error) {
	var v, w *C.osv_tensor
	if vectors {
		err = status(C.osv_linalg_eigh(a.p, &v, &w))
	} else {
		err = status(C.osv_linalg_eigh(a.p, &v, nil))
	}
	return Tensor{v}, Tensor{w}, err
}
