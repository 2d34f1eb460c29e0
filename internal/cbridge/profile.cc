// profile.cc: libtorch's Kineto profiler, started and stopped around a
// region of work; the trace is written in the Chrome trace format.
#include <torch/csrc/autograd/profiler_kineto.h>

#include <memory>
#include <set>

#include "bridge.h"

namespace {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

bool profiling = false;

}  // namespace

extern "C" {

char* osv_profile_start(int cuda) {
  OSV_TRY
  if (profiling) throw std::runtime_error("profiler: already running");
  std::set<impl::ActivityType> acts{impl::ActivityType::CPU};
  if (cuda != 0) acts.insert(impl::ActivityType::CUDA);
  impl::ProfilerConfig cfg(impl::ProfilerState::KINETO);
  prof::prepareProfiler(cfg, acts);
  prof::enableProfiler(cfg, acts);
  profiling = true;
  OSV_CATCH
}

char* osv_profile_stop(const char* path) {
  OSV_TRY
  if (!profiling) throw std::runtime_error("profiler: not running");
  profiling = false;
  std::unique_ptr<prof::ProfilerResult> r = prof::disableProfiler();
  if (r == nullptr) throw std::runtime_error("profiler: no result");
  r->save(std::string(path));
  OSV_CATCH
}

}  // extern "C"
