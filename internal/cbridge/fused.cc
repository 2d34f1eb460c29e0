// fused.cc: fused operations of the convolutional blocks. Each has one
// meaning on every device; on CUDA, for inference (no autograd graph to
// record) on dense float32/float16/bfloat16 activations, it runs the
// kernels of kernels.cu in one pass over memory, and otherwise the same
// computation with ATen's operators.
#include "bridge.h"

#include <c10/core/GradMode.h>

#include <algorithm>

#ifdef OSV_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>

extern "C" {
int osv_k_affine_act(int dtype, const void* x, void* y, const float* scale, const float* shift, int64_t N, int64_t C,
                     int64_t S, int64_t inner, int act, cudaStream_t stream);
int osv_k_residual(int dtype, const void* x, const void* h, const float* b, const float* alpha, void* out, int64_t N,
                   int64_t C, int64_t S, int64_t inner, cudaStream_t stream);
int osv_k_stats_cl_blocks(int64_t S);
int osv_k_stats_cl(int dtype, const void* x, float* part, int64_t N, int64_t S, int64_t C, int blocks,
                   cudaStream_t stream);
int osv_k_stats_rows(int dtype, const void* x, float* part, int64_t rows, int64_t S, int64_t seg_len, int segs,
                     cudaStream_t stream);
int osv_k_geglu(int dtype, const void* h, void* out, int64_t R, int64_t D, cudaStream_t stream);
int osv_k_layer_norm(int dtype, const void* x, const void* w, const void* b, void* y, int64_t R, int64_t C,
                     float eps, cudaStream_t stream);
int osv_k_upsample2x(int dtype, const void* x, void* y, int64_t N, int64_t H, int64_t W, int64_t C,
                     cudaStream_t stream);
}
#endif

namespace {

std::atomic<int64_t> opt_fused_kernels{1};
std::atomic<int64_t> kernel_launches{0};  // fused kernel calls, for tests

// Shape [N, C, 1, ...] for per-(sample, channel) values of an x of x.dim().
std::vector<int64_t> per_channel_shape(const at::Tensor& x, int64_t n) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = n;
  shape[1] = x.size(1);
  return shape;
}

// bias_nc views an optional per-channel bias ([C], or [N or 1, C]) as
// [N or 1, C, 1, ...] for broadcasting against x.
at::Tensor bias_nc(const at::Tensor& x, const at::Tensor& b) {
  const int64_t C = x.size(1);
  TORCH_CHECK(b.numel() == C || (b.dim() == 2 && b.size(1) == C && (b.size(0) == 1 || b.size(0) == x.size(0))),
              "fused: bias of shape ", b.sizes(), " does not match ", C, " channels of ", x.sizes());
  const int64_t n = b.numel() == C ? 1 : b.size(0);
  return b.reshape(per_channel_shape(x, n));
}

#ifdef OSV_CUDA_KERNELS

int dtype_code(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kFloat: return 0;
    case at::kHalf: return 1;
    case at::kBFloat16: return 2;
    default: return -1;
  }
}

// needs_graph is whether autograd would record an operation on these inputs.
bool needs_graph(std::initializer_list<const at::Tensor*> ts) {
  if (!c10::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : ts)
    if (t != nullptr && t->defined() && t->requires_grad()) return true;
  return false;
}

// inner_of is the layout's inner stride (see kernels.cu): S for the default
// layout, 1 for channels-last, or -1 for anything else.
int64_t inner_of(const at::Tensor& x) {
  if (x.dim() < 3) return -1;
  const int64_t S = x.numel() / (x.size(0) * x.size(1));
  if (x.is_contiguous()) return S;
  std::vector<int64_t> perm{0};
  for (int64_t d = 2; d < x.dim(); d++) perm.push_back(d);
  perm.push_back(1);
  return x.permute(perm).is_contiguous() ? 1 : -1;
}

bool aligned(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

// kernel_layout checks that x suits the vectorised kernels and returns
// its inner stride, or -1.
int64_t kernel_layout(const at::Tensor& x) {
  if (opt_fused_kernels.load() == 0 || !x.is_cuda() || dtype_code(x) < 0 || x.numel() == 0 || !aligned(x)) return -1;
  const int64_t inner = inner_of(x);
  const int64_t V = x.scalar_type() == at::kFloat ? 4 : 8;
  if (inner == 1) return x.size(1) % V == 0 && x.size(1) / V <= 256 ? 1 : -1;
  return inner % V == 0 && inner / V <= 1024LL * 65535 ? inner : -1;
}

void check(int code, const char* what) {
  kernel_launches.fetch_add(1, std::memory_order_relaxed);
  if (code != 0) throw std::runtime_error(std::string(what) + ": CUDA error " + std::to_string(code));
}

// channel_stats returns per-(sample, channel) sums and sums of squares of
// x, float [N, 2, C], reading x once.
at::Tensor channel_stats(const at::Tensor& x, int64_t inner) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  const int64_t V = x.scalar_type() == at::kFloat ? 4 : 8;
  auto f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  if (inner == 1) {
    const int blocks = osv_k_stats_cl_blocks(S);
    at::Tensor part = at::empty({N, blocks, 2, C}, f32);
    check(osv_k_stats_cl(dtype_code(x), x.data_ptr(), part.data_ptr<float>(), N, S, C, blocks, stream), "stats");
    return part.sum(1);
  }
  // Segments of about 64k elements, a multiple of the vector width.
  const int64_t seg = std::max<int64_t>(V, ((std::min<int64_t>(S, 65536) + V - 1) / V) * V);
  const int64_t segs = (S + seg - 1) / seg;
  at::Tensor part = at::empty({N * C, segs, 2}, f32);
  check(osv_k_stats_rows(dtype_code(x), x.data_ptr(), part.data_ptr<float>(), N * C, S, seg, static_cast<int>(segs),
                         stream),
        "stats");
  return part.sum(1).view({N, C, 2}).transpose(1, 2);
}

#endif  // OSV_CUDA_KERNELS

// group_norm_act: act(GroupNorm(x + bias)); bias per channel (or per
// sample and channel), undefined for none; act 0 identity, 1 SiLU.
at::Tensor group_norm_act(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                          const c10::optional<at::Tensor>& b, double eps, const at::Tensor& bias, int act) {
  TORCH_CHECK(act == 0 || act == 1, "group_norm_act: unknown activation ", act);
  TORCH_CHECK(x.dim() >= 3, "group_norm_act: want [N, C, spatial...], got ", x.sizes());
  const int64_t N = x.size(0), C = x.size(1);
  TORCH_CHECK(groups > 0 && C % groups == 0, "group_norm: ", C, " channels are not divisible into ", groups,
              " groups");
#ifdef OSV_CUDA_KERNELS
  const at::Tensor* wp = w.has_value() ? &*w : nullptr;
  const at::Tensor* bp = b.has_value() ? &*b : nullptr;
  const int64_t inner = kernel_layout(x);
  if (inner >= 0 && !needs_graph({&x, wp, bp, &bias})) {
    const int64_t S = x.numel() / (N * C);
    at::Tensor st = channel_stats(x, inner);  // [N, 2, C]
    at::Tensor sum = st.select(1, 0), sq = st.select(1, 1);
    at::Tensor bb;
    if (bias.defined()) {
      bb = bias_nc(x, bias).to(at::kFloat).reshape({-1, C}).expand({N, C});
      // Sums of x + b from those of x: Σ(x+b) = Σx + S·b, Σ(x+b)² = Σx² + 2bΣx + S·b².
      sq = sq + 2 * bb * sum + S * bb * bb;
      sum = sum + S * bb;
    }
    const double m = static_cast<double>(S * (C / groups));
    at::Tensor mean = sum.view({N, groups, -1}).sum(2) / m;
    at::Tensor var = at::clamp_min(sq.view({N, groups, -1}).sum(2) / m - mean * mean, 0);
    at::Tensor scale = at::rsqrt(var + eps).repeat_interleave(C / groups, 1);  // [N, C]
    at::Tensor shift = -(mean.repeat_interleave(C / groups, 1) * scale);
    if (bb.defined()) shift = shift + bb * scale;
    if (wp != nullptr && wp->defined()) {
      at::Tensor wf = wp->to(at::kFloat);
      scale = scale * wf;
      shift = shift * wf;
    }
    if (bp != nullptr && bp->defined()) shift = shift + bp->to(at::kFloat);
    scale = scale.contiguous();
    shift = shift.contiguous();
    at::Tensor y = at::empty_like(x);
    check(osv_k_affine_act(dtype_code(x), x.data_ptr(), y.data_ptr(), scale.data_ptr<float>(), shift.data_ptr<float>(),
                           N, C, S, inner, act, at::cuda::getCurrentCUDAStream().stream()),
          "group_norm_act");
    return y;
  }
#endif
  at::Tensor in = bias.defined() ? x + bias_nc(x, bias).to(x.scalar_type()) : x;
  at::Tensor y = osv::group_norm(in, groups, w, b, eps);
  return act == 1 ? at::silu(y) : y;
}

// residual: x + alpha·(h + bias); bias per channel and alpha a one-element
// tensor, each undefined for none.
at::Tensor residual(const at::Tensor& x, const at::Tensor& h, const at::Tensor& bias, const at::Tensor& alpha) {
  TORCH_CHECK(x.sizes() == h.sizes(), "residual: shapes ", x.sizes(), " and ", h.sizes(), " differ");
  TORCH_CHECK(!alpha.defined() || alpha.numel() == 1, "residual: alpha must have one element, got ", alpha.sizes());
  TORCH_CHECK(x.dim() >= 2 || !bias.defined(), "residual: a channel bias needs [N, C, ...], got ", x.sizes());
#ifdef OSV_CUDA_KERNELS
  const int64_t inner = kernel_layout(x);
  if (inner >= 0 && h.strides() == x.strides() && h.scalar_type() == x.scalar_type() && h.device() == x.device() &&
      aligned(h) && (!bias.defined() || bias.numel() == x.size(1)) && !needs_graph({&x, &h, &bias, &alpha})) {
    at::Tensor bf = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();
    at::Tensor af = alpha.defined() ? alpha.to(x.device(), at::kFloat).contiguous() : at::Tensor();
    at::Tensor out = at::empty_like(x);
    const int64_t N = x.size(0), C = x.size(1);
    check(osv_k_residual(dtype_code(x), x.data_ptr(), h.data_ptr(), bf.defined() ? bf.data_ptr<float>() : nullptr,
                         af.defined() ? af.data_ptr<float>() : nullptr, out.data_ptr(), N, C, x.numel() / (N * C),
                         inner, at::cuda::getCurrentCUDAStream().stream()),
          "residual");
    return out;
  }
#endif
  at::Tensor d = bias.defined() ? h + bias_nc(h, bias).to(h.scalar_type()) : h;
  if (alpha.defined()) d = d * alpha.to(d.scalar_type());
  return x + d;
}

// geglu: h [..., 2D] → h[..., :D]·GELU(h[..., D:]).
at::Tensor geglu(const at::Tensor& h) {
  TORCH_CHECK(h.dim() >= 1 && h.size(-1) % 2 == 0, "geglu: the last dimension of ", h.sizes(), " must be even");
  const int64_t D = h.size(-1) / 2;
#ifdef OSV_CUDA_KERNELS
  const int64_t V = h.scalar_type() == at::kFloat ? 4 : 8;
  if (opt_fused_kernels.load() != 0 && h.is_cuda() && dtype_code(h) >= 0 && h.is_contiguous() && aligned(h) &&
      D % V == 0 && h.numel() > 0 && !needs_graph({&h})) {
    std::vector<int64_t> shape = h.sizes().vec();
    shape.back() = D;
    at::Tensor out = at::empty(shape, h.options());
    check(osv_k_geglu(dtype_code(h), h.data_ptr(), out.data_ptr(), h.numel() / (2 * D), D,
                      at::cuda::getCurrentCUDAStream().stream()),
          "geglu");
    return out;
  }
#endif
  std::vector<at::Tensor> parts = h.chunk(2, -1);
  return parts[0] * at::gelu(parts[1]);
}

}  // namespace

namespace osv {

// upsample_nearest2x_fused writes nearest ×2 upsampling of a channels-last
// [N, C, H, W] x to *out with one kernel and returns true, or returns
// false where that kernel does not apply (the caller uses ATen's).
bool upsample_nearest2x_fused(const at::Tensor& x, int64_t oh, int64_t ow, at::Tensor* out) {
#ifdef OSV_CUDA_KERNELS
  if (x.dim() != 4 || oh != 2 * x.size(2) || ow != 2 * x.size(3) || kernel_layout(x) != 1 || needs_graph({&x}))
    return false;
  at::Tensor y = at::empty({x.size(0), x.size(1), oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  check(osv_k_upsample2x(dtype_code(x), x.data_ptr(), y.data_ptr(), x.size(0), x.size(2), x.size(3), x.size(1),
                         at::cuda::getCurrentCUDAStream().stream()),
        "upsample_nearest");
  *out = y;
  return true;
#else
  (void)x;
  (void)oh;
  (void)ow;
  (void)out;
  return false;
#endif
}

// layer_norm_fused writes LayerNorm of x over its last dimension C to
// *out with one kernel and returns true, or returns false where the kernel
// does not apply: not CUDA, fused kernels off, an autograd graph to
// record, a layout other than dense rows, C not a whole number of 16-byte
// vectors, or weights of another dtype or length.
bool layer_norm_fused(const at::Tensor& x, const c10::optional<at::Tensor>& w, const c10::optional<at::Tensor>& b,
                      double eps, at::Tensor* out) {
#ifdef OSV_CUDA_KERNELS
  if (opt_fused_kernels.load() == 0 || !x.is_cuda() || dtype_code(x) < 0 || x.dim() < 1 || x.numel() == 0 ||
      !x.is_contiguous() || !aligned(x))
    return false;
  const int64_t C = x.size(-1);
  const int64_t V = x.scalar_type() == at::kFloat ? 4 : 8;
  if (C % V != 0 || C / V > 65536) return false;
  const at::Tensor* wp = w.has_value() && w->defined() ? &*w : nullptr;
  const at::Tensor* bp = b.has_value() && b->defined() ? &*b : nullptr;
  for (const at::Tensor* p : {wp, bp})
    if (p != nullptr && (p->numel() != C || p->scalar_type() != x.scalar_type() || p->device() != x.device() ||
                         !p->is_contiguous()))
      return false;
  if (needs_graph({&x, wp, bp})) return false;
  at::Tensor y = at::empty_like(x);
  check(osv_k_layer_norm(dtype_code(x), x.data_ptr(), wp ? wp->data_ptr() : nullptr, bp ? bp->data_ptr() : nullptr,
                         y.data_ptr(), x.numel() / C, C, static_cast<float>(eps),
                         at::cuda::getCurrentCUDAStream().stream()),
        "layer_norm");
  *out = y;
  return true;
#else
  (void)x;
  (void)w;
  (void)b;
  (void)eps;
  (void)out;
  return false;
#endif
}

}  // namespace osv

namespace {

at::Tensor undefined_or(osv_tensor* t) { return t == nullptr ? at::Tensor() : osv::ref(t); }

}  // namespace

extern "C" {

char* osv_group_norm_act(osv_tensor* x, int64_t groups, osv_tensor* w, osv_tensor* b, double eps, osv_tensor* bias,
                         int act, osv_tensor** out) {
  OSV_TRY
  const c10::optional<at::Tensor> W = osv::opt(w);
  *out = osv::wrap(group_norm_act(osv::in_weights_dtype(osv::ref(x), W), groups, W, osv::opt(b), eps, undefined_or(bias), act));
  OSV_CATCH
}

char* osv_residual(osv_tensor* x, osv_tensor* h, osv_tensor* bias, osv_tensor* alpha, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(residual(osv::ref(x), osv::ref(h), undefined_or(bias), undefined_or(alpha)));
  OSV_CATCH
}

char* osv_geglu(osv_tensor* h, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(geglu(osv::ref(h)));
  OSV_CATCH
}

char* osv_set_fused_kernels(int on) {
  OSV_TRY
  opt_fused_kernels.store(on != 0 ? 1 : 0);
  OSV_CATCH
}

int64_t osv_fused_kernel_launches(void) { return kernel_launches.load(); }

int osv_fused_kernels_built(void) {
#ifdef OSV_CUDA_KERNELS
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"
