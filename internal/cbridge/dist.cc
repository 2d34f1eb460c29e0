// dist.cc: data-parallel collectives through libtorch's c10d: a TCPStore
// rendezvous and a Gloo process group (CPU tensors; CUDA tensors are staged
// through the host). Built only with OSV_DIST (the Makefile defines it when
// Gloo's headers are present); otherwise every call reports that.
#include "bridge.h"

#ifdef OSV_DIST
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // the header declares the Gloo group only under it
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <memory>

namespace {

struct group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::chrono::milliseconds timeout;
};

group& ref_group(osv_group* g) {
  if (g == nullptr) throw std::invalid_argument("null process group");
  return *reinterpret_cast<group*>(g);
}

// wait finishes a collective or throws when it fails or outlives the
// group's timeout (a dead or stuck peer).
void wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout) {
  if (!work->wait(timeout)) throw std::runtime_error("collective did not complete");
}

// Collectives run on flat float32 CPU buffers of at most this many bytes.
constexpr int64_t kBucketBytes = 32 << 20;

// for_buckets groups consecutive tensors into buckets and calls f with
// each bucket's flat CPU float32 copy, then writes the result back.
template <typename F>
void for_buckets(osv_tensor** ts, int n, F f) {
  int i = 0;
  while (i < n) {
    int j = i;
    int64_t bytes = 0;
    std::vector<at::Tensor> parts;
    while (j < n && (j == i || bytes + osv::ref(ts[j]).numel() * 4 <= kBucketBytes)) {
      const at::Tensor& t = osv::ref(ts[j]);
      bytes += t.numel() * 4;
      parts.push_back(t.detach().reshape({-1}).to(at::kCPU, at::kFloat));
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

int osv_dist_built(void) { return 1; }

char* osv_dist_init(const char* addr, int port, int rank, int world, int64_t timeout_ms, osv_group** out) {
  OSV_TRY
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<std::size_t>(world);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr));
  auto* g = new group{c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts), timeout};
  *out = reinterpret_cast<osv_group*>(g);
  OSV_CATCH
}

void osv_dist_free(osv_group* g) { delete reinterpret_cast<group*>(g); }

char* osv_dist_allreduce_mean(osv_group* g, osv_tensor** ts, int n) {
  OSV_TRY
  group& gr = ref_group(g);
  const double scale = 1.0 / static_cast<double>(gr.pg->getSize());
  for_buckets(ts, n, [&](std::vector<at::Tensor>& flat) {
    wait(gr.pg->allreduce(flat), gr.timeout);
    flat[0].mul_(scale);
  });
  OSV_CATCH
}

char* osv_dist_broadcast(osv_group* g, osv_tensor** ts, int n, int root) {
  OSV_TRY
  group& gr = ref_group(g);
  c10d::BroadcastOptions o;
  o.rootRank = root;
  for_buckets(ts, n, [&](std::vector<at::Tensor>& flat) { wait(gr.pg->broadcast(flat, o), gr.timeout); });
  OSV_CATCH
}

char* osv_dist_barrier(osv_group* g) {
  OSV_TRY
  group& gr = ref_group(g);
  // A barrier as a one-element all-reduce, so that it honours the timeout.
  std::vector<at::Tensor> one{at::ones({1})};
  wait(gr.pg->allreduce(one), gr.timeout);
  OSV_CATCH
}

}  // extern "C"

#else  // !OSV_DIST

extern "C" {

int osv_dist_built(void) { return 0; }

static char* not_built() {
  return osv::dup("distributed: this build has no c10d/Gloo (install Gloo's headers, libgloo-dev, and rebuild)");
}

char* osv_dist_init(const char*, int, int, int, int64_t, osv_group**) { return not_built(); }
void osv_dist_free(osv_group*) {}
char* osv_dist_allreduce_mean(osv_group*, osv_tensor**, int) { return not_built(); }
char* osv_dist_broadcast(osv_group*, osv_tensor**, int, int) { return not_built(); }
char* osv_dist_barrier(osv_group*) { return not_built(); }

}  // extern "C"

#endif
