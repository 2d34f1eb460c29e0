// bridge.h: helpers shared by the bridge's C++ files. Not part of the C ABI.
#ifndef OSV_BRIDGE_INTERNAL_H
#define OSV_BRIDGE_INTERNAL_H

#include <ATen/ATen.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cbridge.h"

namespace osv {

extern std::atomic<int64_t> live;

// sync_threads gives the calling OS thread the process-wide intra-op
// thread count. libtorch's OpenMP setting is per thread, and Go runs each
// call on whichever thread is free: without this, the same operation
// splits its parallel reductions differently from call to call, and
// results differ in the last bits.
void sync_threads();

// group_norm is GroupNorm with the kernels the OSV_OPT_GROUP_NORM_SPLIT
// option selects (nn.cc).
at::Tensor group_norm(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                      const c10::optional<at::Tensor>& b, double eps);

// upsample_nearest2x_fused is nearest ×2 upsampling by a fused kernel
// where one applies (fused.cc); false: use ATen's.
bool upsample_nearest2x_fused(const at::Tensor& x, int64_t oh, int64_t ow, at::Tensor* out);

// layer_norm_fused is LayerNorm over x's last dimension by a fused kernel
// where one applies (fused.cc); false: use ATen's.
bool layer_norm_fused(const at::Tensor& x, const c10::optional<at::Tensor>& w, const c10::optional<at::Tensor>& b,
                      double eps, at::Tensor* out);

// dup copies a message into malloc'd memory for the Go side to free.
inline char* dup(const char* msg) {
  size_t n = std::strlen(msg);
  char* s = static_cast<char*>(std::malloc(n + 1));
  if (s != nullptr) std::memcpy(s, msg, n + 1);
  return s;
}

inline at::Tensor& ref(osv_tensor* t) {
  if (t == nullptr) throw std::invalid_argument("null tensor handle");
  return *reinterpret_cast<at::Tensor*>(t);
}

inline c10::optional<at::Tensor> opt(osv_tensor* t) {
  if (t == nullptr) return c10::nullopt;
  return *reinterpret_cast<at::Tensor*>(t);
}

inline osv_tensor* wrap(at::Tensor t) {
  auto* p = new at::Tensor(std::move(t));
  live.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<osv_tensor*>(p);
}

// in_weights_dtype is x in the dtype of the weights w of a normalisation
// (x itself when they agree or w is absent): under autocast a lower-precision
// input can meet float32 weights, and the normalisation then runs in float32,
// as CUDA autocast's policy for normalisations does on every device.
inline at::Tensor in_weights_dtype(const at::Tensor& x, const c10::optional<at::Tensor>& w) {
  if (!w.has_value() || !w->defined() || w->scalar_type() == x.scalar_type() || !x.is_floating_point() ||
      !w->is_floating_point())
    return x;
  return x.to(w->scalar_type());
}

inline at::IntArrayRef dims(const int64_t* p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

inline at::Device device(int type, int index) {
  if (type == 0) return at::Device(at::kCPU);
  if (type == 1) return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}

inline at::ScalarType scalar_type(int code) {
  switch (code) {
    case 0: return at::kByte;
    case 4: return at::kLong;
    case 5: return at::kHalf;
    case 6: return at::kFloat;
    case 7: return at::kDouble;
    case 11: return at::kBool;
    case 15: return at::kBFloat16;
    case 3: return at::kInt;
    case 1: return at::kChar;
    case 2: return at::kShort;
  }
  throw std::invalid_argument("unsupported dtype code " + std::to_string(code));
}

inline at::TensorOptions options(int dtype, int dev_type, int dev_index) {
  return at::TensorOptions().dtype(scalar_type(dtype)).device(device(dev_type, dev_index));
}

}  // namespace osv

// OSV_TRY / OSV_CATCH wrap the body of every exported function: any exception
// becomes a returned message, without the C++ backtrace.
#define OSV_TRY \
  try {           \
    osv::sync_threads();
#define OSV_CATCH                                                  \
  }                                                                \
  catch (const c10::Error& e) {                                    \
    return osv::dup(e.what_without_backtrace());                   \
  }                                                                \
  catch (const std::exception& e) {                                \
    return osv::dup(e.what());                                     \
  }                                                                \
  catch (...) {                                                    \
    return osv::dup("unknown C++ exception");                      \
  }                                                                \
  return nullptr;

#endif
