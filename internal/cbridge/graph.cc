// graph.cc: CUDA graphs. Work issued on a graph's side stream between
// begin and end is recorded once and replayed with one launch. Built
// without CUDA, every call reports so.
#include <torch/csrc/api/include/torch/version.h>

#include "bridge.h"

#if defined(OSV_CUDA) && TORCH_VERSION_MAJOR >= 2
#define OSV_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

struct osv_graph {
  explicit osv_graph(c10::DeviceIndex d) : dev(d), stream(c10::cuda::getStreamFromPool(false, d)) {}
  c10::DeviceIndex dev;
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStreamGuard> guard;  // the side stream made current, between enter and leave
  bool capturing = false;
  bool captured = false;
};
#else
struct osv_graph {};
#endif

extern "C" {

#ifdef OSV_CUDA_GRAPHS

char* osv_graph_new(int dev_index, osv_graph** out) {
  OSV_TRY
  if (dev_index < 0 || dev_index >= static_cast<int>(c10::cuda::device_count()))
    throw std::invalid_argument("graph: no CUDA device " + std::to_string(dev_index));
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(dev_index));
  *out = new osv_graph(static_cast<c10::DeviceIndex>(dev_index));
  OSV_CATCH
}

// osv_graph_enter waits for the device's work so far, then makes the
// graph's side stream current on the calling thread.
char* osv_graph_enter(osv_graph* g) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null graph");
  if (g->guard) throw std::logic_error("graph: already entered");
  c10::cuda::set_device(g->dev);
  c10::cuda::device_synchronize();
  g->guard.emplace(g->stream);
  OSV_CATCH
}

// osv_graph_leave waits for the side stream's work and restores the
// thread's stream.
char* osv_graph_leave(osv_graph* g) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null graph");
  if (!g->guard) throw std::logic_error("graph: not entered");
  g->stream.synchronize();
  g->guard.reset();
  OSV_CATCH
}

char* osv_graph_begin(osv_graph* g) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null graph");
  if (!g->guard) throw std::logic_error("graph: capture outside enter");
  if (g->capturing || g->captured) throw std::logic_error("graph: already captured");
  g->stream.synchronize();
  g->graph.capture_begin();
  g->capturing = true;
  OSV_CATCH
}

// osv_graph_end ends the capture. With abort set (the captured work
// failed), the capture is ended and discarded, and the graph cannot be
// replayed.
char* osv_graph_end(osv_graph* g, int abort) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null graph");
  if (!g->capturing) throw std::logic_error("graph: not capturing");
  g->capturing = false;
  if (abort) {
    try {
      g->graph.capture_end();
    } catch (...) {
    }
    try {
      g->graph.reset();
    } catch (...) {
    }
    (void)cudaGetLastError();  // a failed capture leaves its error behind
    return nullptr;
  }
  g->graph.capture_end();
  g->captured = true;
  OSV_CATCH
}

char* osv_graph_replay(osv_graph* g) {
  OSV_TRY
  if (g == nullptr) throw std::invalid_argument("null graph");
  if (!g->captured) throw std::logic_error("graph: nothing captured to replay");
  c10::cuda::CUDAGuard device(g->dev);
  g->graph.replay();
  OSV_CATCH
}

void osv_graph_free(osv_graph* g) {
  if (g == nullptr) return;
  try {
    if (g->guard) g->guard.reset();
    delete g;
  } catch (...) {
  }
}

#else

static const char kNoGraphs[] = "CUDA graphs need a CUDA build of libtorch 2.0 or later";

char* osv_graph_new(int, osv_graph**) { return osv::dup(kNoGraphs); }
char* osv_graph_enter(osv_graph*) { return osv::dup(kNoGraphs); }
char* osv_graph_leave(osv_graph*) { return osv::dup(kNoGraphs); }
char* osv_graph_begin(osv_graph*) { return osv::dup(kNoGraphs); }
char* osv_graph_end(osv_graph*, int) { return osv::dup(kNoGraphs); }
char* osv_graph_replay(osv_graph*) { return osv::dup(kNoGraphs); }
void osv_graph_free(osv_graph* g) { delete g; }

#endif

}  // extern "C"
