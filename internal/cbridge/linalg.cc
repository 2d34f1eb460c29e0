// linalg.cc: decompositions of libtorch's linalg module.
#include "bridge.h"

extern "C" {

char* osv_linalg_eigh(osv_tensor* a, osv_tensor** values, osv_tensor** vectors) {
  OSV_TRY
  const at::Tensor& A = osv::ref(a);
  if (A.dim() < 2 || A.size(-1) != A.size(-2)) {
    throw std::invalid_argument("eigh takes square matrices [..., n, n], got shape " + c10::str(A.sizes()));
  }
  if (vectors == nullptr) {
    *values = osv::wrap(at::linalg_eigvalsh(A));
  } else {
    auto vv = at::linalg_eigh(A);
    *values = osv::wrap(std::get<0>(vv));
    *vectors = osv::wrap(std::get<1>(vv));
  }
  OSV_CATCH
}

}  // extern "C"
