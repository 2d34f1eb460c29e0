// optim.cc: in-place optimiser updates over lists of parameters.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>

#include <cmath>

#include "bridge.h"

extern "C" {

char* osv_adamw(osv_tensor** params, osv_tensor** exp_avg, osv_tensor** exp_avg_sq, int n, double lr,
                double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  OSV_TRY
  if (step < 1) throw std::invalid_argument("adamw: step must be at least 1");
  at::NoGradGuard no_grad;  // this call's thread only, and only for its duration
  const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  for (int i = 0; i < n; i++) {
    at::Tensor& p = osv::ref(params[i]);
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    at::Tensor& m = osv::ref(exp_avg[i]);
    at::Tensor& v = osv::ref(exp_avg_sq[i]);
    if (weight_decay != 0) p.mul_(1 - lr * weight_decay);
    m.mul_(beta1).add_(g, 1 - beta1);
    v.mul_(beta2).addcmul_(g, g, 1 - beta2);
    at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(eps);
    p.addcdiv_(m, denom, -lr / bc1);
  }
  OSV_CATCH
}

// osv_adamw_foreach is osv_adamw's update in the same order of operations,
// each one applied to every parameter at once (multi-tensor kernels on
// CUDA when the lists share a device and dtype).
char* osv_adamw_foreach(osv_tensor** params, osv_tensor** exp_avg, osv_tensor** exp_avg_sq, int n, double lr,
                        double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  OSV_TRY
  if (step < 1) throw std::invalid_argument("adamw: step must be at least 1");
  at::NoGradGuard no_grad;
  const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  std::vector<at::Tensor> p, g, m, v;
  for (int i = 0; i < n; i++) {
    const at::Tensor& pi = osv::ref(params[i]);
    const at::Tensor& gi = pi.grad();
    if (!gi.defined()) continue;
    const at::Tensor& mi = osv::ref(exp_avg[i]);
    if (!gi.sizes().equals(pi.sizes()) || !mi.sizes().equals(pi.sizes()) || !osv::ref(exp_avg_sq[i]).sizes().equals(pi.sizes()))
      throw std::invalid_argument("adamw: parameter " + std::to_string(i) + "'s gradient or moments do not fit it");
    p.push_back(pi);
    g.push_back(gi);
    m.push_back(mi);
    v.push_back(osv::ref(exp_avg_sq[i]));
  }
  if (p.empty()) return nullptr;
  if (weight_decay != 0) at::_foreach_mul_(p, 1 - lr * weight_decay);
  at::_foreach_mul_(m, beta1);
  at::_foreach_add_(m, g, 1 - beta1);
  at::_foreach_mul_(v, beta2);
  at::_foreach_addcmul_(v, g, g, 1 - beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, eps);
  at::_foreach_addcdiv_(p, m, denom, -lr / bc1);
  OSV_CATCH
}

char* osv_clip_grad_norm(osv_tensor** params, int n, double max_norm, double* total_norm) {
  OSV_TRY
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (int i = 0; i < n; i++) {
    const at::Tensor& g = osv::ref(params[i]).grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) {
    *total_norm = 0;
    return nullptr;
  }
  at::Tensor sq = at::zeros({}, grads[0].options().dtype(at::kFloat));
  for (const auto& g : grads) sq = sq + at::linalg_vector_norm(g, 2, c10::nullopt, false, at::kFloat).square();
  const double total = std::sqrt(sq.item<double>());
  *total_norm = total;
  if (!std::isfinite(total) || max_norm <= 0 || total <= max_norm) return nullptr;
  const double scale = max_norm / (total + 1e-6);
  for (auto& g : grads) g.mul_(scale);
  OSV_CATCH
}

// osv_clip_grad_norm_foreach is osv_clip_grad_norm with the norms taken
// and the gradients scaled over all parameters at once. Float32 gradients
// only (the norms are taken in the gradients' dtype); the others take the
// per-parameter path.
char* osv_clip_grad_norm_foreach(osv_tensor** params, int n, double max_norm, double* total_norm) {
  OSV_TRY
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  bool f32 = true;
  for (int i = 0; i < n; i++) {
    const at::Tensor& g = osv::ref(params[i]).grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    f32 = f32 && g.scalar_type() == at::kFloat;
  }
  if (!f32) return osv_clip_grad_norm(params, n, max_norm, total_norm);
  if (grads.empty()) {
    *total_norm = 0;
    return nullptr;
  }
  // One copy of all the norms to the host, then the per-parameter path's
  // float32 sum of squares in its order: the same total to the bit where
  // the norms are the same.
  const at::Tensor norms = at::stack(at::_foreach_norm(grads, 2)).to(at::kCPU).contiguous();
  const float* nv = norms.data_ptr<float>();
  float sq = 0;
  for (int64_t i = 0; i < norms.numel(); i++) sq = sq + nv[i] * nv[i];
  const double total = std::sqrt(static_cast<double>(sq));
  *total_norm = total;
  if (!std::isfinite(total) || max_norm <= 0 || total <= max_norm) return nullptr;
  at::_foreach_mul_(grads, max_norm / (total + 1e-6));
  OSV_CATCH
}

char* osv_ema(osv_tensor** dst, osv_tensor** src, int n, double decay) {
  OSV_TRY
  at::NoGradGuard no_grad;
  for (int i = 0; i < n; i++) {
    at::Tensor& d = osv::ref(dst[i]);
    d.lerp_(osv::ref(src[i]).to(d.scalar_type()), 1 - decay);
  }
  OSV_CATCH
}

char* osv_copy_(osv_tensor* dst, osv_tensor* src) {
  OSV_TRY
  at::NoGradGuard no_grad;
  osv::ref(dst).copy_(osv::ref(src));
  OSV_CATCH
}

}  // extern "C"
