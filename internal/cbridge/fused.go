package cbridge

// #include "cbridge.h"
import "C"

// GroupNormAct is act(GroupNorm(x + bias)); bias ([C] or [N, C]) may be
// the null handle; silu selects SiLU as the activation (else identity).
func GroupNormAct(x Tensor, groups int64, w, b Tensor, eps float64, bias Tensor, silu bool) (Tensor, error) {
	act := C.int(0)
	if silu {
		act = 1
	}
	var out *C.osv_tensor
	return result(out, C.osv_group_norm_act(x.p, C.int64_t(groups), w.p, b.p, C.double(eps), bias.p, act, &out))
}

// Residual is x + alpha·(h + bias); bias [C] and alpha (one element) may
// be null handles (none, 1).
func Residual(x, h, bias, alpha Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_residual(x.p, h.p, bias.p, alpha.p, &out))
}

// GEGLU maps h [..., 2D] to h[..., :D]·GELU(h[..., D:]).
func GEGLU(h Tensor) (Tensor, error) {
	var out *C.osv_tensor
	return result(out, C.osv_geglu(h.p, &out))
}

// SetFusedKernels turns the fused CUDA kernels on (the default) or off.
func SetFusedKernels(on bool) error {
	v := C.int(0)
	if on {
		v = 1
	}
	return status(C.osv_set_fused_kernels(v))
}

// FusedKernelsBuilt reports whether the bridge has the fused CUDA kernels.
func FusedKernelsBuilt() bool { return C.osv_fused_kernels_built() != 0 }

// FusedKernelLaunches counts the fused kernels run so far.
func FusedKernelLaunches() int64 { return int64(C.osv_fused_kernel_launches()) }
