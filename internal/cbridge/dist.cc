// dist.cc: data-parallel collectives through libtorch's c10d: a TCPStore
// rendezvous and a process group, Gloo (tensors reduced on the host) or
// NCCL (tensors reduced on the rank's GPU). Each backend is built only when
// its headers are there (the Makefile defines OSV_DIST_GLOO, OSV_DIST_NCCL);
// otherwise asking for it reports that.
#include "bridge.h"

#if defined(OSV_DIST_GLOO) || defined(OSV_DIST_NCCL)
#ifdef OSV_DIST_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // the header declares the Gloo group only under it
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef OSV_DIST_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace {

struct group {
#ifdef OSV_DIST_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef OSV_DIST_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  std::chrono::milliseconds timeout;
  at::Device device{at::kCPU};  // where buckets are reduced
  int size = 1;
};

group& ref_group(osv_group* g) {
  if (g == nullptr) throw std::invalid_argument("null process group");
  return *reinterpret_cast<group*>(g);
}

c10::intrusive_ptr<c10d::Work> allreduce(group& g, std::vector<at::Tensor>& t) {
#ifdef OSV_DIST_NCCL
  if (g.nccl) return g.nccl->allreduce(t);
#endif
#ifdef OSV_DIST_GLOO
  if (g.gloo) return g.gloo->allreduce(t);
#endif
  throw std::runtime_error("process group has no backend");
}

c10::intrusive_ptr<c10d::Work> broadcast(group& g, std::vector<at::Tensor>& t, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
#ifdef OSV_DIST_NCCL
  if (g.nccl) return g.nccl->broadcast(t, o);
#endif
#ifdef OSV_DIST_GLOO
  if (g.gloo) return g.gloo->broadcast(t, o);
#endif
  throw std::runtime_error("process group has no backend");
}

// wait finishes a collective or throws when it fails or outlives the
// group's timeout (a dead or stuck peer). For NCCL the wait blocks the
// host only in blocking-wait mode, which osv_dist_init turns on.
void wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout) {
  if (!work->wait(timeout)) throw std::runtime_error("collective did not complete");
}

// Collectives run on flat float32 buffers of at most this many bytes.
constexpr int64_t kBucketBytes = 32 << 20;

// for_buckets groups consecutive tensors into buckets and calls f with
// each bucket's flat float32 copy on the group's device, then writes the
// result back.
template <typename F>
void for_buckets(group& g, osv_tensor** ts, int n, F f) {
  int i = 0;
  while (i < n) {
    int j = i;
    int64_t bytes = 0;
    std::vector<at::Tensor> parts;
    while (j < n && (j == i || bytes + osv::ref(ts[j]).numel() * 4 <= kBucketBytes)) {
      const at::Tensor& t = osv::ref(ts[j]);
      if (g.device.is_cuda() && t.device() != g.device)
        throw std::invalid_argument("tensor on " + t.device().str() + " in a process group on " + g.device.str());
      bytes += t.numel() * 4;
      parts.push_back(t.detach().reshape({-1}).to(g.device, at::kFloat));
      j++;
    }
    std::vector<at::Tensor> flat{at::cat(parts)};
    f(flat);
    int64_t off = 0;
    for (int k = i; k < j; k++) {
      at::Tensor& t = osv::ref(ts[k]);
      const int64_t m = t.numel();
      at::NoGradGuard no_grad;
      t.copy_(flat[0].narrow(0, off, m).view(t.sizes()));
      off += m;
    }
    i = j;
  }
}

}  // namespace

extern "C" {

int osv_dist_built(int backend) {
#ifdef OSV_DIST_GLOO
  if (backend == 0) return 1;
#endif
#ifdef OSV_DIST_NCCL
  if (backend == 1) return 1;
#endif
  (void)backend;
  return 0;
}

char* osv_dist_init(const char* addr, int port, int rank, int world, int64_t timeout_ms, int backend, int device,
                    osv_group** out) {
  OSV_TRY
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (osv_dist_built(backend) == 0)
    throw std::invalid_argument(std::string("this build has no c10d ") + (backend == 1 ? "NCCL" : "Gloo") +
                                " backend");
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<std::size_t>(world);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
  auto g = std::make_unique<group>();
  g->timeout = timeout;
  g->size = world;
#ifdef OSV_DIST_NCCL
  if (backend == 1) {
    // Collectives then block the host and throw after the timeout instead
    // of leaving a dead peer to the watchdog.
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    g->device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device));
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
  }
#endif
#ifdef OSV_DIST_GLOO
  if (backend == 0) {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr));
    g->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
  }
#endif
  (void)device;
  *out = reinterpret_cast<osv_group*>(g.release());
  OSV_CATCH
}

void osv_dist_free(osv_group* g) {
  auto* gr = reinterpret_cast<group*>(g);
  if (gr == nullptr) return;
#ifdef OSV_DIST_NCCL
  if (gr->nccl) {
    try {
      gr->nccl->shutdown();
    } catch (...) {
    }
  }
#endif
  delete gr;
}

char* osv_dist_allreduce_mean(osv_group* g, osv_tensor** ts, int n) {
  OSV_TRY
  group& gr = ref_group(g);
  const double scale = 1.0 / static_cast<double>(gr.size);
  for_buckets(gr, ts, n, [&](std::vector<at::Tensor>& flat) {
    wait(allreduce(gr, flat), gr.timeout);
    flat[0].mul_(scale);
  });
  OSV_CATCH
}

char* osv_dist_broadcast(osv_group* g, osv_tensor** ts, int n, int root) {
  OSV_TRY
  group& gr = ref_group(g);
  for_buckets(gr, ts, n, [&](std::vector<at::Tensor>& flat) { wait(broadcast(gr, flat, root), gr.timeout); });
  OSV_CATCH
}

char* osv_dist_barrier(osv_group* g) {
  OSV_TRY
  group& gr = ref_group(g);
  // A barrier as a one-element all-reduce, so that it honours the timeout.
  std::vector<at::Tensor> one{at::ones({1}, at::TensorOptions().device(gr.device))};
  wait(allreduce(gr, one), gr.timeout);
  if (gr.device.is_cuda()) one[0].item<float>();  // the host waits for the device
  OSV_CATCH
}

}  // extern "C"

namespace {

// reducer averages the gradients of a fixed list of parameters over the
// ranks while the backward pass runs: a hook on each parameter copies its
// gradient into its bucket's flat float32 buffer as soon as autograd has
// it, and a bucket whose gradients are all in starts its all-reduce (in
// bucket order, the same on every rank) while the backward goes on.
// finish() starts what is left (a parameter without a gradient counts as
// zeros), waits, and writes the means into the parameters' .grad.
struct reducer {
  group* g = nullptr;
  std::vector<at::Tensor> params;
  std::vector<unsigned> hooks;
  std::vector<int> bucket_of;                 // parameter → bucket
  std::vector<int64_t> offset_of;             // parameter → offset in its bucket
  std::vector<std::vector<int>> buckets;      // bucket → parameters
  std::vector<at::Tensor> flat;               // bucket → buffer
  std::vector<int> missing;                   // bucket → gradients still to come
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::vector<char> seen;                     // parameter → gradient in
  int next = 0;                               // the next bucket to start
  int in_backward = 0;                        // buckets started inside the backward
  bool armed = false;
  std::mutex mu;
  std::string error;

  void start_ready() {
    while (next < static_cast<int>(buckets.size()) && missing[next] == 0) launch(next++);
  }

  void launch(int b) {
    std::vector<at::Tensor> t{flat[b]};
    works[b] = allreduce(*g, t);
  }

  void ready(int i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || seen[i] || !error.empty()) return;
    try {
      const int b = bucket_of[i];
      at::NoGradGuard no_grad;
      flat[b].narrow(0, offset_of[i], grad.numel()).copy_(grad.detach().reshape({-1}));
      seen[i] = 1;
      missing[b]--;
      const int before = next;
      start_ready();
      in_backward += next - before;
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
};

reducer& ref_reducer(osv_reducer* r) {
  if (r == nullptr) throw std::invalid_argument("null gradient reducer");
  return *reinterpret_cast<reducer*>(r);
}

}  // namespace

extern "C" {

char* osv_reducer_new(osv_group* g, osv_tensor** ps, int n, int64_t bucket_bytes, osv_reducer** out) {
  OSV_TRY
  auto r = std::make_unique<reducer>();
  r->g = &ref_group(g);
  if (bucket_bytes < 4) throw std::invalid_argument("gradient buckets need at least 4 bytes");
  for (int i = 0; i < n; i++) {
    const at::Tensor& p = osv::ref(ps[i]);
    if (!p.requires_grad()) throw std::invalid_argument("gradient reducer: parameter " + std::to_string(i) +
                                                        " does not require a gradient");
    r->params.push_back(p);
  }
  // Buckets in reverse parameter order, the order in which a backward pass
  // tends to produce the gradients.
  r->bucket_of.assign(static_cast<size_t>(n), 0);
  r->offset_of.assign(static_cast<size_t>(n), 0);
  int64_t bytes = 0;
  for (int i = n - 1; i >= 0; i--) {
    const int64_t m = r->params[i].numel() * 4;
    if (r->buckets.empty() || (bytes > 0 && bytes + m > bucket_bytes)) {
      r->buckets.emplace_back();
      bytes = 0;
    }
    r->bucket_of[i] = static_cast<int>(r->buckets.size()) - 1;
    r->offset_of[i] = bytes / 4;
    r->buckets.back().push_back(i);
    bytes += m;
  }
  for (const auto& b : r->buckets) {
    int64_t numel = 0;
    for (int i : b) numel += r->params[i].numel();
    r->flat.push_back(at::zeros({numel}, at::TensorOptions().dtype(at::kFloat).device(r->g->device)));
  }
  r->works.resize(r->buckets.size());
  r->missing.assign(r->buckets.size(), 0);
  r->seen.assign(static_cast<size_t>(n), 0);
  reducer* raw = r.get();
  for (int i = 0; i < n; i++) {
    r->hooks.push_back(r->params[i].register_hook([raw, i](const at::Tensor& grad) { raw->ready(i, grad); }));
  }
  *out = reinterpret_cast<osv_reducer*>(r.release());
  OSV_CATCH
}

char* osv_reducer_arm(osv_reducer* rp) {
  OSV_TRY
  reducer& r = ref_reducer(rp);
  std::lock_guard<std::mutex> lock(r.mu);
  for (size_t b = 0; b < r.buckets.size(); b++) {
    r.flat[b].zero_();
    r.missing[b] = static_cast<int>(r.buckets[b].size());
    r.works[b].reset();
  }
  std::fill(r.seen.begin(), r.seen.end(), 0);
  r.next = 0;
  r.in_backward = 0;
  r.error.clear();
  r.armed = true;
  OSV_CATCH
}

char* osv_reducer_finish(osv_reducer* rp, int* in_backward) {
  OSV_TRY
  reducer& r = ref_reducer(rp);
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.armed) throw std::runtime_error("gradient reducer: finish without arm");
  r.armed = false;
  if (!r.error.empty()) throw std::runtime_error("gradient reducer: " + r.error);
  *in_backward = r.in_backward;
  while (r.next < static_cast<int>(r.buckets.size())) r.launch(r.next++);
  const double scale = 1.0 / static_cast<double>(r.g->size);
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < r.buckets.size(); b++) {
    wait(r.works[b], r.g->timeout);
    r.works[b].reset();
    r.flat[b].mul_(scale);
    for (int i : r.buckets[b]) {
      at::Tensor& p = r.params[i];
      at::Tensor mean = r.flat[b].narrow(0, r.offset_of[i], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(mean);
      } else {
        p.mutable_grad() = mean.to(p.device(), p.scalar_type()).clone();
      }
    }
  }
  OSV_CATCH
}

void osv_reducer_free(osv_reducer* rp) {
  auto* r = reinterpret_cast<reducer*>(rp);
  if (r == nullptr) return;
  for (size_t i = 0; i < r->hooks.size(); i++) {
    try {
      r->params[i].remove_hook(r->hooks[i]);
    } catch (...) {
    }
  }
  delete r;
}
}  // extern "C"

#else  // no backend

extern "C" {

int osv_dist_built(int) { return 0; }

static char* not_built() {
  return osv::dup(
      "distributed: this build has no c10d backend (install Gloo's headers, libgloo-dev, or build against a "
      "libtorch with NCCL, and rebuild)");
}

char* osv_dist_init(const char*, int, int, int, int64_t, int, int, osv_group**) { return not_built(); }
void osv_dist_free(osv_group*) {}
char* osv_dist_allreduce_mean(osv_group*, osv_tensor**, int) { return not_built(); }
char* osv_dist_broadcast(osv_group*, osv_tensor**, int, int) { return not_built(); }
char* osv_dist_barrier(osv_group*) { return not_built(); }
char* osv_reducer_new(osv_group*, osv_tensor**, int, int64_t, osv_reducer**) { return not_built(); }
char* osv_reducer_arm(osv_reducer*) { return not_built(); }
char* osv_reducer_finish(osv_reducer*, int*) { return not_built(); }
void osv_reducer_free(osv_reducer*) {}

}  // extern "C"

#endif
