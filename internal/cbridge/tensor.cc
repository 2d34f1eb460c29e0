// tensor.cc: tensor lifecycle, creation, transfer and random numbers.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/api/include/torch/version.h>

#include "bridge.h"

#ifdef OSV_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

std::atomic<int64_t> osv::live{0};

struct osv_generator {
  at::Generator gen;
};

extern "C" {

void osv_free(osv_tensor* t) {
  if (t == nullptr) return;
  delete reinterpret_cast<at::Tensor*>(t);
  osv::live.fetch_sub(1, std::memory_order_relaxed);
}

int64_t osv_live(void) { return osv::live.load(std::memory_order_relaxed); }

char* osv_version(int* major, int* minor) {
  *major = TORCH_VERSION_MAJOR;
  *minor = TORCH_VERSION_MINOR;
  return nullptr;
}

char* osv_info(osv_tensor* t, int64_t* shape, int* ndim, int* dtype, int* dev_type, int* dev_index,
               int* requires_grad) {
  OSV_TRY
  const at::Tensor& x = osv::ref(t);
  if (!x.defined()) throw std::invalid_argument("undefined tensor");
  int64_t n = x.dim();
  if (n > OSV_MAX_DIMS) throw std::invalid_argument("tensor has more than 16 dimensions");
  for (int64_t i = 0; i < n; i++) shape[i] = x.size(i);
  *ndim = static_cast<int>(n);
  *dtype = static_cast<int>(x.scalar_type());
  *dev_type = x.device().is_cuda() ? 1 : 0;
  *dev_index = x.device().has_index() ? x.device().index() : 0;
  *requires_grad = x.requires_grad() ? 1 : 0;
  OSV_CATCH
}

char* osv_strides(osv_tensor* t, int64_t* strides, int* ndim) {
  OSV_TRY
  const at::Tensor& x = osv::ref(t);
  if (!x.defined()) throw std::invalid_argument("undefined tensor");
  const int64_t n = x.dim();
  if (n > OSV_MAX_DIMS) throw std::invalid_argument("tensor has more than 16 dimensions");
  for (int64_t i = 0; i < n; i++) strides[i] = x.stride(i);
  *ndim = static_cast<int>(n);
  OSV_CATCH
}

char* osv_from_blob(void* data, const int64_t* shape, int ndim, int src_dtype, int dtype, int dev_type,
                    int dev_index, osv_tensor** out) {
  OSV_TRY
  at::Tensor src = at::from_blob(data, osv::dims(shape, ndim), at::TensorOptions().dtype(osv::scalar_type(src_dtype)));
  // Always copy: the source memory belongs to the caller.
  *out = osv::wrap(src.to(osv::device(dev_type, dev_index), osv::scalar_type(dtype), false, true));
  OSV_CATCH
}

char* osv_copy_out(osv_tensor* t, void* dst, int64_t nbytes) {
  OSV_TRY
  at::Tensor x = osv::ref(t).detach().to(at::kCPU).contiguous();
  int64_t have = x.numel() * static_cast<int64_t>(x.element_size());
  if (have != nbytes) {
    throw std::invalid_argument("copy out: tensor holds " + std::to_string(have) + " bytes, buffer " +
                                std::to_string(nbytes));
  }
  if (nbytes > 0) std::memcpy(dst, x.data_ptr(), static_cast<size_t>(nbytes));
  OSV_CATCH
}

char* osv_to(osv_tensor* t, int dtype, int dev_type, int dev_index, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(osv::ref(t).to(osv::device(dev_type, dev_index), osv::scalar_type(dtype)));
  OSV_CATCH
}

char* osv_full(const int64_t* shape, int ndim, double value, int dtype, int dev_type, int dev_index,
               osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::full(osv::dims(shape, ndim), value, osv::options(dtype, dev_type, dev_index)));
  OSV_CATCH
}

char* osv_arange(double start, double end, double step, int dtype, int dev_type, int dev_index,
                 osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::arange(start, end, step, osv::options(dtype, dev_type, dev_index)));
  OSV_CATCH
}

char* osv_item(osv_tensor* t, double* out) {
  OSV_TRY
  *out = osv::ref(t).item<double>();
  OSV_CATCH
}

char* osv_export(osv_tensor* t, void** out) {
  OSV_TRY
  *out = new at::Tensor(osv::ref(t));
  OSV_CATCH
}

char* osv_import(void* p, osv_tensor** out) {
  OSV_TRY
  if (p == nullptr) throw std::invalid_argument("null at::Tensor pointer");
  const at::Tensor& x = *static_cast<at::Tensor*>(p);
  if (!x.defined()) throw std::invalid_argument("undefined tensor");
  *out = osv::wrap(x);
  OSV_CATCH
}

void osv_delete_exported(void* p) { delete static_cast<at::Tensor*>(p); }

char* osv_set_requires_grad(osv_tensor* t, int on) {
  OSV_TRY
  osv::ref(t).set_requires_grad(on != 0);
  OSV_CATCH
}

char* osv_backward(osv_tensor* loss, osv_tensor* grad) {
  OSV_TRY
  const at::Tensor& L = osv::ref(loss);
  if (grad != nullptr) {
    L.backward(osv::ref(grad));
  } else {
    if (L.numel() != 1) throw std::invalid_argument("backward of a tensor with " + std::to_string(L.numel()) +
                                                    " elements needs a gradient");
    L.backward();
  }
  OSV_CATCH
}

char* osv_grad(osv_tensor* t, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& g = osv::ref(t).grad();
  *out = g.defined() ? osv::wrap(g) : nullptr;
  OSV_CATCH
}

char* osv_zero_grad(osv_tensor* t) {
  OSV_TRY
  osv::ref(t).mutable_grad().reset();
  OSV_CATCH
}

char* osv_generator_new(uint64_t seed, osv_generator** out) {
  OSV_TRY
  *out = new osv_generator{at::make_generator<at::CPUGeneratorImpl>(seed)};
  OSV_CATCH
}

char* osv_generator_new_device(uint64_t seed, int dev_type, int dev_index, osv_generator** out) {
  OSV_TRY
  const at::Device dev = osv::device(dev_type, dev_index);
  if (dev.is_cpu()) return osv_generator_new(seed, out);
#ifdef OSV_CUDA
  at::Generator gen = at::cuda::detail::createCUDAGenerator(dev.index());
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  *out = new osv_generator{gen};
#else
  throw std::invalid_argument("this build of the library has no CUDA support (libtorch without CUDA)");
#endif
  OSV_CATCH
}

void osv_generator_free(osv_generator* g) { delete g; }

char* osv_generator_get_state(osv_generator* g, osv_tensor** out) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null generator");
  *out = osv::wrap(g->gen.get_state());
  OSV_CATCH
}

char* osv_generator_set_state(osv_generator* g, osv_tensor* state) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null generator");
  g->gen.set_state(osv::ref(state));
  OSV_CATCH
}

static char* random_tensor(bool normal, osv_generator* g, const int64_t* shape, int ndim, int dtype,
                           int dev_type, int dev_index, osv_tensor** out) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null generator");
  // Draw in float32 on the generator's device (the CPU unless it was made
  // for a device), then cast and move: a CPU generator's seed gives the same
  // numbers on every device and in every dtype.
  auto opts = at::TensorOptions().dtype(at::kFloat).device(g->gen.device());
  // ATen's kernels lock the generator themselves.
  at::Tensor x =
      normal ? at::randn(osv::dims(shape, ndim), g->gen, opts) : at::rand(osv::dims(shape, ndim), g->gen, opts);
  *out = osv::wrap(x.to(osv::device(dev_type, dev_index), osv::scalar_type(dtype)));
  OSV_CATCH
}

char* osv_randn(osv_generator* g, const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index,
                osv_tensor** out) {
  return random_tensor(true, g, shape, ndim, dtype, dev_type, dev_index, out);
}

char* osv_rand(osv_generator* g, const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index,
               osv_tensor** out) {
  return random_tensor(false, g, shape, ndim, dtype, dev_type, dev_index, out);
}

}  // extern "C"
