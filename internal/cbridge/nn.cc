// nn.cc: the layer kernels: convolution, linear, normalisation, attention and
// nearest upsampling.
#include <torch/csrc/api/include/torch/version.h>

#include "bridge.h"

extern "C" {

char* osv_conv(osv_tensor* x, osv_tensor* w, osv_tensor* b, const int64_t* stride, const int64_t* padding,
               const int64_t* dilation, int nspatial, int64_t groups, osv_tensor** out) {
  OSV_TRY
  std::vector<int64_t> output_padding(static_cast<size_t>(nspatial), 0);
  *out = osv::wrap(at::convolution(osv::ref(x), osv::ref(w), osv::opt(b), osv::dims(stride, nspatial),
                                   osv::dims(padding, nspatial), osv::dims(dilation, nspatial), false,
                                   output_padding, groups));
  OSV_CATCH
}

char* osv_linear(osv_tensor* x, osv_tensor* w, osv_tensor* b, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::linear(osv::ref(x), osv::ref(w), osv::opt(b)));
  OSV_CATCH
}

char* osv_group_norm(osv_tensor* x, int64_t groups, osv_tensor* w, osv_tensor* b, double eps, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::group_norm(osv::ref(x), groups, osv::opt(w), osv::opt(b), eps, true));
  OSV_CATCH
}

char* osv_layer_norm(osv_tensor* x, const int64_t* shape, int n, osv_tensor* w, osv_tensor* b, double eps,
                     osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::layer_norm(osv::ref(x), osv::dims(shape, n), osv::opt(w), osv::opt(b), eps, true));
  OSV_CATCH
}

char* osv_sdpa(osv_tensor* q, osv_tensor* k, osv_tensor* v, double scale, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& Q = osv::ref(q);
  const at::Tensor& K = osv::ref(k);
  const at::Tensor& V = osv::ref(v);
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  *out = osv::wrap(at::scaled_dot_product_attention(Q, K, V, c10::nullopt, 0.0, false, scale));
#else
  // libtorch before 2.1 has no public fused attention taking a scale: the
  // math formulation, softmax(Q Kᵀ · scale) V.
  at::Tensor logits = at::matmul(Q, K.transpose(-2, -1)).mul_(scale);
  *out = osv::wrap(at::matmul(at::softmax(logits, -1), V));
#endif
  OSV_CATCH
}

char* osv_upsample_nearest(osv_tensor* x, const int64_t* size, int nspatial, osv_tensor** out) {
  OSV_TRY
  at::IntArrayRef s = osv::dims(size, nspatial);
  const at::Tensor& X = osv::ref(x);
  at::Tensor y;
  switch (nspatial) {
    case 1: y = at::upsample_nearest1d(X, s, c10::nullopt); break;
    case 2: y = at::upsample_nearest2d(X, s, c10::nullopt, c10::nullopt); break;
    case 3: y = at::upsample_nearest3d(X, s, c10::nullopt, c10::nullopt, c10::nullopt); break;
    default: throw std::invalid_argument("nearest upsampling takes 1 to 3 spatial dimensions");
  }
  *out = osv::wrap(std::move(y));
  OSV_CATCH
}

}  // extern "C"
