// ops.cc: elementwise operations, reductions and views. The op codes match
// the constants in ops.go.
#include "bridge.h"

extern "C" {

char* osv_unary(int op, osv_tensor* a, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& x = osv::ref(a);
  at::Tensor y;
  switch (op) {
    case 0: y = at::neg(x); break;
    case 1: y = at::exp(x); break;
    case 2: y = at::log(x); break;
    case 3: y = at::sqrt(x); break;
    case 4: y = at::rsqrt(x); break;
    case 5: y = at::sin(x); break;
    case 6: y = at::cos(x); break;
    case 7: y = at::silu(x); break;
    case 8: y = at::gelu(x); break;
    case 9: y = at::sigmoid(x); break;
    case 10: y = at::tanh(x); break;
    case 11: y = at::relu(x); break;
    case 12: y = at::abs(x); break;
    case 13: y = x.contiguous(); break;
    case 14: y = x.clone(); break;
    case 15: y = at::square(x); break;
    case 16: y = x.detach(); break;
    case 17: y = at::gelu(x, "tanh"); break;
    case 18:
      if (x.dim() != 4 && x.dim() != 5)
        throw std::invalid_argument("channels-last layout: want a 4-d or 5-d tensor, got " + std::to_string(x.dim()) + "-d");
      y = x.contiguous(x.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::ChannelsLast3d);
      break;
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
  *out = osv::wrap(std::move(y));
  OSV_CATCH
}

char* osv_binary(int op, osv_tensor* a, osv_tensor* b, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& x = osv::ref(a);
  const at::Tensor& y = osv::ref(b);
  at::Tensor z;
  switch (op) {
    case 0: z = at::add(x, y); break;
    case 1: z = at::sub(x, y); break;
    case 2: z = at::mul(x, y); break;
    case 3: z = at::div(x, y); break;
    case 4: z = at::matmul(x, y); break;
    case 5: z = at::maximum(x, y); break;
    case 6: z = at::minimum(x, y); break;
    case 7: z = at::pow(x, y); break;
    case 8: z = at::gt(x, y); break;
    case 9: z = at::lt(x, y); break;
    case 10: z = at::eq(x, y); break;
    default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
  }
  *out = osv::wrap(std::move(z));
  OSV_CATCH
}

char* osv_scalar(int op, osv_tensor* a, double s, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& x = osv::ref(a);
  at::Tensor z;
  switch (op) {
    case 0: z = at::add(x, s); break;
    case 1: z = at::mul(x, s); break;
    case 2: z = at::pow(x, s); break;
    case 3: z = at::sub(at::scalar_tensor(s, x.options()), x); break;
    case 4: z = at::div(at::scalar_tensor(s, x.options()), x); break;
    case 5: z = at::clamp_min(x, s); break;
    case 6: z = at::clamp_max(x, s); break;
    case 7: z = at::gt(x, s); break;
    case 8: z = at::lt(x, s); break;
    case 9: z = at::leaky_relu(x, s); break;
    default: throw std::invalid_argument("unknown scalar op " + std::to_string(op));
  }
  *out = osv::wrap(std::move(z));
  OSV_CATCH
}

char* osv_reduce(int op, osv_tensor* a, const int64_t* dims, int ndims, int keepdim, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& x = osv::ref(a);
  at::Tensor z;
  bool all = ndims == 0;
  switch (op) {
    case 0: z = all ? at::sum(x) : at::sum(x, osv::dims(dims, ndims), keepdim != 0); break;
    case 1: z = all ? at::mean(x) : at::mean(x, osv::dims(dims, ndims), keepdim != 0); break;
    case 2: z = all ? at::amax(x, at::IntArrayRef{}) : at::amax(x, osv::dims(dims, ndims), keepdim != 0); break;
    case 3: z = all ? at::amin(x, at::IntArrayRef{}) : at::amin(x, osv::dims(dims, ndims), keepdim != 0); break;
    default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }
  *out = osv::wrap(std::move(z));
  OSV_CATCH
}

char* osv_lerp(osv_tensor* start, osv_tensor* end, osv_tensor* weight, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::lerp(osv::ref(start), osv::ref(end), osv::ref(weight)));
  OSV_CATCH
}

char* osv_where(osv_tensor* cond, osv_tensor* a, osv_tensor* b, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::where(osv::ref(cond), osv::ref(a), osv::ref(b)));
  OSV_CATCH
}

char* osv_softmax(osv_tensor* a, int64_t dim, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::softmax(osv::ref(a), dim));
  OSV_CATCH
}

char* osv_reshape(osv_tensor* a, const int64_t* shape, int n, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(osv::ref(a).reshape(osv::dims(shape, n)));
  OSV_CATCH
}

char* osv_permute(osv_tensor* a, const int64_t* dims, int n, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(osv::ref(a).permute(osv::dims(dims, n)));
  OSV_CATCH
}

char* osv_expand(osv_tensor* a, const int64_t* shape, int n, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(osv::ref(a).expand(osv::dims(shape, n)));
  OSV_CATCH
}

char* osv_slice(osv_tensor* a, int64_t dim, int64_t start, int64_t end, int64_t step, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(osv::ref(a).slice(dim, start, end, step));
  OSV_CATCH
}

char* osv_cat(osv_tensor** ts, int n, int64_t dim, osv_tensor** out) {
  OSV_TRY
  std::vector<at::Tensor> xs;
  xs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) xs.push_back(osv::ref(ts[i]));
  *out = osv::wrap(at::cat(xs, dim));
  OSV_CATCH
}

char* osv_repeat_interleave(osv_tensor* a, int64_t repeats, int64_t dim, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::repeat_interleave(osv::ref(a), repeats, dim));
  OSV_CATCH
}

}  // extern "C"
