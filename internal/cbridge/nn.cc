// nn.cc: the layer kernels: convolution, linear, normalisation, attention and
// nearest upsampling.
#include <torch/csrc/api/include/torch/version.h>

#include "bridge.h"

namespace {

std::atomic<int64_t> opt_group_norm_split{1};
std::atomic<int64_t> opt_short_attention{0};
std::atomic<int64_t> opt_fused_layer_norm{0};

// GroupNorm with its statistics from ATen's reductions, which split very
// long rows over many thread blocks (a video UNet has few rows of up to a
// million elements each), accumulated in float32, then one fused
// x·scale + shift pass: y = (x − μ)·σ⁻¹·w + b = x·(σ⁻¹w) + (b − μσ⁻¹w).
at::Tensor group_norm_split(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                            const c10::optional<at::Tensor>& b, double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  TORCH_CHECK(x.numel() > 0, "group_norm: empty input ", x.sizes());
  TORCH_CHECK(groups > 0 && c % groups == 0, "group_norm: ", c, " channels are not divisible into ", groups,
              " groups");
  // Channels-last input (channels innermost in memory) is viewed as
  // [n, spatial, groups, c/groups] and reduced over dimensions 1 and 3,
  // without a copy; otherwise as [n, groups, rest], reduced over 2.
  std::vector<int64_t> perm{0};
  for (int64_t d = 2; d < x.dim(); d++) perm.push_back(d);
  perm.push_back(1);
  at::Tensor xp = x.permute(perm);
  const bool last = !x.is_contiguous() && xp.is_contiguous();
  at::Tensor xg = last ? xp.view({n, -1, groups, c / groups}) : x.reshape({n, groups, -1});
  std::vector<int64_t> red = last ? std::vector<int64_t>{1, 3} : std::vector<int64_t>{2};
  const double m = static_cast<double>(x.numel() / (n * groups));
  auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  // Out of place throughout: autograd may have saved any of these.
  at::Tensor mean = at::sum(xg, red, false, acc) / m;
  at::Tensor sq = at::linalg_vector_norm(xg, 2, red, false, acc);
  at::Tensor var = at::clamp_min(sq * sq / m - mean * mean, 0);
  at::Tensor scale = at::rsqrt(var + eps).repeat_interleave(c / groups, 1);  // [n, c]
  at::Tensor shift = -(mean.repeat_interleave(c / groups, 1) * scale);
  if (w.has_value() && w->defined()) {
    scale = scale * *w;
    shift = shift * *w;
  }
  if (b.has_value() && b->defined()) shift = shift + *b;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = n;
  shape[1] = c;
  return at::addcmul(shift.to(x.scalar_type()).view(shape), x, scale.to(x.scalar_type()).view(shape));
}

}  // namespace

namespace osv {

at::Tensor group_norm(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                      const c10::optional<at::Tensor>& b, double eps) {
  const int64_t split = opt_group_norm_split.load();
  if (x.dim() >= 3 && (split == 2 || (split == 1 && x.is_cuda()))) return group_norm_split(x, groups, w, b, eps);
  return at::group_norm(x, groups, w, b, eps, true);
}

}  // namespace osv

extern "C" {

char* osv_set_option(int key, int64_t value) {
  OSV_TRY
  switch (key) {
    case OSV_OPT_GROUP_NORM_SPLIT: opt_group_norm_split.store(value); break;
    case OSV_OPT_SHORT_ATTENTION: opt_short_attention.store(value); break;
    case OSV_OPT_FUSED_LAYER_NORM: opt_fused_layer_norm.store(value); break;
    default: throw std::invalid_argument("unknown option " + std::to_string(key));
  }
  OSV_CATCH
}

char* osv_get_option(int key, int64_t* value) {
  OSV_TRY
  switch (key) {
    case OSV_OPT_GROUP_NORM_SPLIT: *value = opt_group_norm_split.load(); break;
    case OSV_OPT_SHORT_ATTENTION: *value = opt_short_attention.load(); break;
    case OSV_OPT_FUSED_LAYER_NORM: *value = opt_fused_layer_norm.load(); break;
    default: throw std::invalid_argument("unknown option " + std::to_string(key));
  }
  OSV_CATCH
}

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
  const c10::optional<at::Tensor> W = osv::opt(w);
  *out = osv::wrap(osv::group_norm(osv::in_weights_dtype(osv::ref(x), W), groups, W, osv::opt(b), eps));
  OSV_CATCH
}

char* osv_layer_norm(osv_tensor* x, const int64_t* shape, int n, osv_tensor* w, osv_tensor* b, double eps,
                     osv_tensor** out) {
  OSV_TRY
  const at::Tensor X = osv::in_weights_dtype(osv::ref(x), osv::opt(w));
  at::Tensor y;
  if (!(opt_fused_layer_norm.load() != 0 && n == 1 && X.dim() >= 1 && shape[0] == X.size(-1) &&
        osv::layer_norm_fused(X, osv::opt(w), osv::opt(b), eps, &y)))
    y = at::layer_norm(X, osv::dims(shape, n), osv::opt(w), osv::opt(b), eps, true);
  *out = osv::wrap(std::move(y));
  OSV_CATCH
}

char* osv_sdpa(osv_tensor* q, osv_tensor* k, osv_tensor* v, double scale, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& Q = osv::ref(q);
  const at::Tensor& K = osv::ref(k);
  const at::Tensor& V = osv::ref(v);
  const int64_t short_len = opt_short_attention.load();
  const bool math = Q.is_cuda() && short_len > 0 && K.size(-2) <= short_len && Q.size(-2) <= short_len;
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  if (!math) {
    *out = osv::wrap(at::scaled_dot_product_attention(Q, K, V, c10::nullopt, 0.0, false, scale));
    return nullptr;
  }
#endif
  {
    // The math formulation, softmax(Q Kᵀ · scale) V: for libtorch before
    // 2.1 (no fused attention taking a scale), and for short sequences,
    // where fused kernels mostly compute padding. Logits and softmax in
    // float32; the probabilities meet V in V's dtype, as in fused kernels.
    auto acc = Q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor logits = at::matmul(Q.to(acc), K.to(acc).transpose(-2, -1)) * scale;
    *out = osv::wrap(at::matmul(at::softmax(logits, -1).to(V.scalar_type()), V));
  }
  OSV_CATCH
}

char* osv_upsample_nearest(osv_tensor* x, const int64_t* size, int nspatial, osv_tensor** out) {
  OSV_TRY
  at::IntArrayRef s = osv::dims(size, nspatial);
  const at::Tensor& X = osv::ref(x);
  at::Tensor y;
  switch (nspatial) {
    case 1: y = at::upsample_nearest1d(X, s, c10::nullopt); break;
    case 2:
      if (!osv::upsample_nearest2x_fused(X, s[0], s[1], &y)) y = at::upsample_nearest2d(X, s, c10::nullopt, c10::nullopt);
      break;
    case 3: y = at::upsample_nearest3d(X, s, c10::nullopt, c10::nullopt, c10::nullopt); break;
    default: throw std::invalid_argument("nearest upsampling takes 1 to 3 spatial dimensions");
  }
  *out = osv::wrap(std::move(y));
  OSV_CATCH
}

char* osv_interpolate(osv_tensor* x, int mode, int64_t h, int64_t w, int align_corners, int antialias,
                      osv_tensor** out) {
  OSV_TRY
  const at::Tensor& X = osv::ref(x);
  if (X.dim() != 4) throw std::invalid_argument("interpolate takes [N, C, H, W] input");
  std::vector<int64_t> size{h, w};
  const bool ac = align_corners != 0;
  at::Tensor y;
  switch (mode) {
    case 0:
      y = antialias ? at::_upsample_bilinear2d_aa(X, size, ac, c10::nullopt, c10::nullopt)
                    : at::upsample_bilinear2d(X, size, ac, c10::nullopt, c10::nullopt);
      break;
    case 1:
      y = antialias ? at::_upsample_bicubic2d_aa(X, size, ac, c10::nullopt, c10::nullopt)
                    : at::upsample_bicubic2d(X, size, ac, c10::nullopt, c10::nullopt);
      break;
    default: throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
  }
  *out = osv::wrap(std::move(y));
  OSV_CATCH
}

char* osv_pad(osv_tensor* x, const int64_t* pads, int n, int mode, double value, osv_tensor** out) {
  OSV_TRY
  const at::Tensor& X = osv::ref(x);
  at::IntArrayRef p = osv::dims(pads, n);
  at::Tensor y;
  switch (mode) {
    case 0: y = at::constant_pad_nd(X, p, value); break;
    case 1:
      if (n == 2) y = at::reflection_pad1d(X, p);
      else if (n == 4) y = at::reflection_pad2d(X, p);
      else if (n == 6) y = at::reflection_pad3d(X, p);
      else throw std::invalid_argument("reflect padding takes 2, 4 or 6 pad sizes");
      break;
    case 2:
      if (n == 2) y = at::replication_pad1d(X, p);
      else if (n == 4) y = at::replication_pad2d(X, p);
      else if (n == 6) y = at::replication_pad3d(X, p);
      else throw std::invalid_argument("replicate padding takes 2, 4 or 6 pad sizes");
      break;
    default: throw std::invalid_argument("unknown padding mode " + std::to_string(mode));
  }
  *out = osv::wrap(std::move(y));
  OSV_CATCH
}

char* osv_pixel_shuffle(osv_tensor* x, int64_t factor, osv_tensor** out) {
  OSV_TRY
  *out = osv::wrap(at::pixel_shuffle(osv::ref(x), factor));
  OSV_CATCH
}

}  // extern "C"
