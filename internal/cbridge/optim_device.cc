// optim_device.cc: the optimiser update and the gradient clip with every
// number they depend on kept on the parameters' device (the step counts,
// the learning rate, the norm), so that no value travels to the host and
// the work can be recorded in a CUDA graph.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cmath>

#include "bridge.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#include <ATen/ops/_fused_adamw.h>
#define OSV_FUSED_ADAMW 1
#endif
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define OSV_FOREACH_TENSOR_SCALAR 1
#endif

namespace {

// fusable reports whether ATen's fused AdamW kernel takes these lists:
// float32 tensors on one CUDA device, with the learning rate there too.
bool fusable(const std::vector<at::Tensor>& p, const at::Tensor& lr) {
#ifdef OSV_FUSED_ADAMW
  if (p.empty() || !p[0].is_cuda() || lr.device() != p[0].device()) return false;
  for (const auto& t : p)
    if (t.scalar_type() != at::kFloat || t.device() != p[0].device()) return false;
  return true;
#else
  (void)p;
  (void)lr;
  return false;
#endif
}

}  // namespace

extern "C" {

// osv_adamw_device is osv_adamw with the step count of each parameter in
// steps[i] (a float32 scalar tensor, incremented here) and the learning
// rate in lr (a float32 scalar tensor); both on the parameters' device.
// When skip_unless_finite is given (a one-element tensor, a gradient norm
// say) and is not finite, the moments and parameters are left as they are;
// the step counts still advance. Float32 parameters on one CUDA device take
// ATen's fused kernel; the others take the per-parameter update. Neither
// reads a value back to the host.
char* osv_adamw_device(osv_tensor** params, osv_tensor** exp_avg, osv_tensor** exp_avg_sq, osv_tensor** steps,
                       int n, osv_tensor* lr, double beta1, double beta2, double eps, double weight_decay,
                       osv_tensor* skip_unless_finite) {
  OSV_TRY
  at::NoGradGuard no_grad;
  const at::Tensor& lrt = osv::ref(lr);
  if (lrt.numel() != 1) throw std::invalid_argument("adamw: the learning rate tensor must have one element");
  // Every parameter's count advances, with a gradient or not: the step
  // count is the optimiser's, as in osv_adamw.
  std::vector<at::Tensor> all_steps, p, g, m, v, st;
  for (int i = 0; i < n; i++) {
    const at::Tensor& pi = osv::ref(params[i]);
    const at::Tensor& si = osv::ref(steps[i]);
    if (si.numel() != 1 || si.scalar_type() != at::kFloat || si.device() != pi.device())
      throw std::invalid_argument("adamw: parameter " + std::to_string(i) +
                                  "'s step count must be one float32 on its device");
    all_steps.push_back(si);
    const at::Tensor& gi = pi.grad();
    if (!gi.defined()) continue;
    const at::Tensor& mi = osv::ref(exp_avg[i]);
    const at::Tensor& vi = osv::ref(exp_avg_sq[i]);
    if (!gi.sizes().equals(pi.sizes()) || !mi.sizes().equals(pi.sizes()) || !vi.sizes().equals(pi.sizes()))
      throw std::invalid_argument("adamw: parameter " + std::to_string(i) + "'s gradient or moments do not fit it");
    p.push_back(pi);
    g.push_back(gi);
    m.push_back(mi);
    v.push_back(vi);
    st.push_back(si);
  }
  if (!all_steps.empty()) at::_foreach_add_(all_steps, 1);
  if (p.empty()) return nullptr;
  c10::optional<at::Tensor> check = osv::opt(skip_unless_finite);
  if (check && check->numel() != 1) throw std::invalid_argument("adamw: the finiteness check must have one element");
#ifdef OSV_FUSED_ADAMW
  if (fusable(p, lrt)) {
    c10::optional<at::Tensor> found_inf;
    if (check) found_inf = at::isfinite(check->reshape({1})).logical_not_().to(p[0].device(), at::kFloat);
    at::_fused_adamw_(p, g, m, v, {}, st, lrt, beta1, beta2, weight_decay, eps, false, false, c10::nullopt,
                      found_inf);
    return nullptr;
  }
#endif
  // The per-parameter update in osv_adamw's order, with the bias
  // corrections and the step size computed on the device. With a
  // finiteness check, the new values are computed aside and kept only
  // where the check is finite (at::where on the device: nothing is read
  // back, so this path can be recorded too).
  c10::optional<at::Tensor> keep;
  if (check) keep = at::isfinite(check->reshape({}));
  const at::Tensor lrp = lrt.reshape({});
  for (size_t i = 0; i < p.size(); i++) {
    const at::Tensor lri = lrp.to(p[i].device(), at::kFloat);
    at::Tensor pn = keep ? p[i].clone() : p[i];
    at::Tensor mn = keep ? m[i].clone() : m[i];
    at::Tensor vn = keep ? v[i].clone() : v[i];
    if (weight_decay != 0) pn.mul_(lri.mul(-weight_decay).add_(1).to(pn.scalar_type()));
    mn.mul_(beta1).add_(g[i], 1 - beta1);
    vn.mul_(beta2).addcmul_(g[i], g[i], 1 - beta2);
    const at::Tensor bc1 = at::pow(at::Scalar(beta1), st[i]).neg_().add_(1);
    const at::Tensor bc2 = at::pow(at::Scalar(beta2), st[i]).neg_().add_(1);
    const at::Tensor denom = vn.sqrt().div_(bc2.sqrt().to(vn.scalar_type())).add_(eps);
    const at::Tensor size = lri.div(bc1).neg_().to(mn.scalar_type());
    pn.add_(mn.mul(size).div_(denom));
    if (keep) {
      const at::Tensor k = keep->to(p[i].device());
      p[i].copy_(at::where(k, pn, p[i]));
      m[i].copy_(at::where(k, mn, m[i]));
      v[i].copy_(at::where(k, vn, v[i]));
    }
  }
  OSV_CATCH
}

// osv_clip_grad_norm_device is osv_clip_grad_norm with the global norm
// left on the device (*total, a float32 scalar) and the gradients always
// multiplied by min(1, max_norm / (norm + 1e-6)) there (max_norm > 0). A
// norm that is not finite zeroes the gradients instead.
char* osv_clip_grad_norm_device(osv_tensor** params, int n, double max_norm, osv_tensor** total) {
  OSV_TRY
  at::NoGradGuard no_grad;
  if (n < 1) throw std::invalid_argument("clip_grad_norm: no parameters");
  std::vector<at::Tensor> grads;
  for (int i = 0; i < n; i++) {
    const at::Tensor& g = osv::ref(params[i]).grad();
    if (g.defined()) grads.push_back(g);
  }
  const at::Device dev = osv::ref(params[0]).device();
  if (grads.empty()) {
    *total = osv::wrap(at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(dev)));
    return nullptr;
  }
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  for (auto& t : norms) t = t.to(dev, at::kFloat);
  const at::Tensor norm = at::stack(norms).square_().sum().sqrt_();
  if (max_norm > 0) {
    const at::Tensor coef = norm.add(1e-6).reciprocal_().mul_(max_norm).clamp_max_(1.0).nan_to_num_(0, 0, 0);
    bool same = true;
    for (const auto& t : grads) same = same && t.scalar_type() == at::kFloat && t.device() == dev;
#ifdef OSV_FOREACH_TENSOR_SCALAR
    if (same) {
      at::_foreach_mul_(grads, coef);
    } else
#endif
    {
      for (auto& t : grads) t.mul_(coef.to(t.device(), t.scalar_type()));
    }
  }
  *total = osv::wrap(norm);
  OSV_CATCH
}

// osv_lerp_device is osv_ema with the weight 1 − decay in a one-element
// tensor: dst ← dst + w·(src − dst) for each pair (w = 0 leaves dst).
char* osv_lerp_device(osv_tensor** dst, osv_tensor** src, int n, osv_tensor* weight) {
  OSV_TRY
  at::NoGradGuard no_grad;
  const at::Tensor& w = osv::ref(weight);
  if (w.numel() != 1) throw std::invalid_argument("ema: the weight tensor must have one element");
  for (int i = 0; i < n; i++) {
    at::Tensor& d = osv::ref(dst[i]);
    d.lerp_(osv::ref(src[i]).to(d.scalar_type()), w.reshape({}).to(d.device(), d.scalar_type()));
  }
  OSV_CATCH
}

}  // extern "C"
