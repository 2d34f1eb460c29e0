package torch

import cb "github.com/onestepvideo/osv-go/internal/cbridge"

// GroupNormAct is act(GroupNorm(x + bias)) for x [N, C, spatial...], with
// C divisible by groups, affine weight w and shift b ([C] each, or nil):
// bias (nil, [C] or [N, C]) is a per-channel input offset such as the bias
// of the convolution that produced x, and silu applies SiLU after the norm.
// On CUDA, without an autograd graph to record, it reads x twice and
// writes once (fused kernels); otherwise it is libtorch's operators. The
// result has x's shape.
func (s *Scope) GroupNormAct(x *Tensor, groups int64, w, b *Tensor, eps float64, bias *Tensor, silu bool) *Tensor {
	h, err := cb.GroupNormAct(x.handle(), groups, handleOrNil(w), handleOrNil(b), eps, handleOrNil(bias), silu)
	return s.wrap("group_norm_act", h, err)
}

// Residual is x + alpha·(h + bias) for x, h [N, C, ...] of one shape:
// bias (nil or [C]) per channel, alpha (nil: 1) a one-element tensor. One
// pass on CUDA without an autograd graph, like GroupNormAct. The result has
// x's shape.
func (s *Scope) Residual(x, h, bias, alpha *Tensor) *Tensor {
	out, err := cb.Residual(x.handle(), h.handle(), handleOrNil(bias), handleOrNil(alpha))
	return s.wrap("residual", out, err)
}

// GEGLU maps h [..., 2D] to h[..., :D]·GELU(h[..., D:]) (exact GELU), in
// one pass on CUDA without an autograd graph.
func (s *Scope) GEGLU(h *Tensor) *Tensor {
	out, err := cb.GEGLU(h.handle())
	return s.wrap("geglu", out, err)
}

// SetFusedKernels turns the fused CUDA kernels of GroupNormAct, Residual
// and GEGLU on (the default) or off, for the whole process; off, they run
// as libtorch's operators everywhere. Turning them on in a build without
// them is not an error: the operators run.
func SetFusedKernels(on bool) error { return cb.SetFusedKernels(on) }

// FusedKernelsBuilt reports whether this build has the fused CUDA kernels.
func FusedKernelsBuilt() bool { return cb.FusedKernelsBuilt() }

// FusedKernelLaunches counts the fused CUDA kernels run so far in this
// process (a check that a path took them).
func FusedKernelLaunches() int64 { return cb.FusedKernelLaunches() }
