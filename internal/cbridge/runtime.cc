// runtime.cc: global settings and the CUDA runtime (device count, memory,
// synchronisation). Built without CUDA, the CUDA calls report so.
#include <torch/csrc/api/include/torch/version.h>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <cstdlib>
#include <thread>

#include "bridge.h"

#ifdef OSV_CUDA
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#if defined(OSV_CUDA) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5))
#define OSV_CUDA_EVENTS 1
struct osv_event {
  c10::Event ev;
};
#else
struct osv_event {};
#endif

namespace {

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  // Half the cores, as gotorch chooses: Go's own threads need the rest.
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  return hw >= 2 ? hw / 2 : 1;
}

std::atomic<int> desired_threads{default_threads()};

}  // namespace

void osv::sync_threads() {
  thread_local int applied = -1;
  const int want = desired_threads.load(std::memory_order_relaxed);
  if (applied != want) {
    at::set_num_threads(want);
    applied = want;
  }
}

namespace {

// This thread's autocast state for one device type, in the API of the
// libtorch at hand (one function per device type before 2.4).
struct autocast_state {
  bool enabled;
  at::ScalarType dtype;
  bool cache;
};

autocast_state autocast_get(bool cuda) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto t = cuda ? at::kCUDA : at::kCPU;
  return {at::autocast::is_autocast_enabled(t), at::autocast::get_autocast_dtype(t),
          at::autocast::is_autocast_cache_enabled()};
#else
  if (cuda) return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype(), at::autocast::is_autocast_cache_enabled()};
  return {at::autocast::is_cpu_enabled(), at::autocast::get_autocast_cpu_dtype(), at::autocast::is_autocast_cache_enabled()};
#endif
}

void autocast_set(bool cuda, const autocast_state& st) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto t = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_dtype(t, st.dtype);
  at::autocast::set_autocast_enabled(t, st.enabled);
#else
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(st.dtype);
    at::autocast::set_enabled(st.enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(st.dtype);
    at::autocast::set_cpu_enabled(st.enabled);
  }
#endif
  at::autocast::set_autocast_cache_enabled(st.cache);
}

}  // namespace

extern "C" {

// osv_autocast sets the calling thread's autocast for CPU (cuda 0) or CUDA
// (1): on with dtype (float16 or bfloat16), its cache of cast weights off
// (a CUDA graph may record what runs), or back to the state a previous call
// returned (restore 1: enabled, dtype and cache as given). It writes the
// state it replaced, and clears the cache of cast weights.
char* osv_autocast(int cuda, int enabled, int dtype, int cache, int restore, int* was_enabled, int* was_dtype,
                   int* was_cache) {
  OSV_TRY
  const autocast_state prev = autocast_get(cuda != 0);
  autocast_state next = prev;
  if (restore != 0) {
    next = {enabled != 0, osv::scalar_type(dtype), cache != 0};
  } else {
    const at::ScalarType st = osv::scalar_type(dtype);
    if (enabled != 0 && st != at::kHalf && st != at::kBFloat16)
      throw std::invalid_argument("autocast: the dtype must be float16 or bfloat16");
    next = {enabled != 0, enabled != 0 ? st : prev.dtype, enabled != 0 ? false : prev.cache};
  }
  autocast_set(cuda != 0, next);
  at::autocast::clear_cache();
  *was_enabled = prev.enabled ? 1 : 0;
  *was_dtype = static_cast<int>(prev.dtype);
  *was_cache = prev.cache ? 1 : 0;
  OSV_CATCH
}

char* osv_set_tf32(int enabled) {
  OSV_TRY
  at::globalContext().setAllowTF32CuBLAS(enabled != 0);
  at::globalContext().setAllowTF32CuDNN(enabled != 0);
  OSV_CATCH
}

char* osv_set_cudnn_benchmark(int enabled) {
  OSV_TRY
  at::globalContext().setBenchmarkCuDNN(enabled != 0);
  OSV_CATCH
}

char* osv_set_num_threads(int n) {
  OSV_TRY
  if (n < 1) throw std::invalid_argument("number of threads must be at least 1");
  desired_threads.store(n);
  osv::sync_threads();
  OSV_CATCH
}

#ifdef OSV_CUDA

int osv_cuda_built(void) { return 1; }

int osv_cuda_device_count(void) {
  try {
    return static_cast<int>(c10::cuda::device_count());
  } catch (...) {
    return 0;
  }
}

char* osv_cuda_synchronize(int dev_index) {
  OSV_TRY
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(dev_index));
  c10::cuda::device_synchronize();
  OSV_CATCH
}

char* osv_cuda_memory(int dev_index, int64_t* allocated, int64_t* peak, int64_t* reserved) {
  OSV_TRY
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(dev_index));
  // Index 0 of each statistic is the aggregate over pool kinds.
  *allocated = stats.allocated_bytes[0].current;
  *peak = stats.allocated_bytes[0].peak;
  *reserved = stats.reserved_bytes[0].current;
  OSV_CATCH
}

char* osv_cuda_reset_peak(int dev_index) {
  OSV_TRY
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(dev_index));
  OSV_CATCH
}

char* osv_cuda_empty_cache(void) {
  OSV_TRY
  c10::cuda::CUDACachingAllocator::emptyCache();
  OSV_CATCH
}

#endif

#ifdef OSV_CUDA_EVENTS

char* osv_cuda_event_record(int dev_index, osv_event** out) {
  OSV_TRY
  auto* e = new osv_event{c10::Event(c10::DeviceType::CUDA, c10::EventFlag::BACKEND_DEFAULT)};
  c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
  e->ev.record(impl.getStream(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(dev_index))));
  *out = e;
  OSV_CATCH
}

char* osv_cuda_event_elapsed(osv_event* start, osv_event* end, double* ms) {
  OSV_TRY
  if (start == nullptr || end == nullptr) throw std::invalid_argument("null event");
  end->ev.synchronize();
  *ms = start->ev.elapsedTime(end->ev);
  OSV_CATCH
}

#else

char* osv_cuda_event_record(int, osv_event**) {
  return osv::dup("CUDA timing events need a CUDA build of libtorch 2.5 or later");
}
char* osv_cuda_event_elapsed(osv_event*, osv_event*, double*) {
  return osv::dup("CUDA timing events need a CUDA build of libtorch 2.5 or later");
}

#endif

void osv_cuda_event_free(osv_event* e) { delete e; }

#ifndef OSV_CUDA

static const char kNoCUDA[] = "this build of the library has no CUDA support (libtorch without CUDA)";

int osv_cuda_built(void) { return 0; }
int osv_cuda_device_count(void) { return 0; }
char* osv_cuda_synchronize(int) { return osv::dup(kNoCUDA); }
char* osv_cuda_memory(int, int64_t*, int64_t*, int64_t*) { return osv::dup(kNoCUDA); }
char* osv_cuda_reset_peak(int) { return osv::dup(kNoCUDA); }
char* osv_cuda_empty_cache(void) { return osv::dup(kNoCUDA); }

#endif

}  // extern "C"
