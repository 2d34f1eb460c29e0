package cbridge

// #include "cbridge.h"
import "C"

import "fmt"

func handles(ts []Tensor) []*C.osv_tensor {
	arr := make([]*C.osv_tensor, len(ts))
	for i, t := range ts {
		arr[i] = t.p
	}
	return arr
}

func first(arr []*C.osv_tensor) **C.osv_tensor {
	if len(arr) == 0 {
		return nil
	}
	return &arr[0]
}

// AdamW updates params in place from their gradients (step counts from 1),
// parameter by parameter or, with foreach, each operation over all of
// them at once.
func AdamW(params, expAvg, expAvgSq []Tensor, lr, beta1, beta2, eps, weightDecay float64, step int64, foreach bool) error {
	if len(expAvg) != len(params) || len(expAvgSq) != len(params) {
		return fmt.Errorf("adamw: %d parameters, %d and %d state tensors", len(params), len(expAvg), len(expAvgSq))
	}
	p, m, v := handles(params), handles(expAvg), handles(expAvgSq)
	if foreach {
		return status(C.osv_adamw_foreach(first(p), first(m), first(v), C.int(len(p)), C.double(lr), C.double(beta1),
			C.double(beta2), C.double(eps), C.double(weightDecay), C.int64_t(step)))
	}
	return status(C.osv_adamw(first(p), first(m), first(v), C.int(len(p)), C.double(lr), C.double(beta1),
		C.double(beta2), C.double(eps), C.double(weightDecay), C.int64_t(step)))
}

// ClipGradNorm scales the gradients to a global norm of at most maxNorm
// and returns the norm before scaling; foreach takes the norms and scales
// over all of them at once.
func ClipGradNorm(params []Tensor, maxNorm float64, foreach bool) (float64, error) {
	p := handles(params)
	var total C.double
	if foreach {
		err := status(C.osv_clip_grad_norm_foreach(first(p), C.int(len(p)), C.double(maxNorm), &total))
		return float64(total), err
	}
	err := status(C.osv_clip_grad_norm(first(p), C.int(len(p)), C.double(maxNorm), &total))
	return float64(total), err
}

// EMA sets dst ← decay·dst + (1 − decay)·src for each pair.
func EMA(dst, src []Tensor, decay float64) error {
	if len(dst) != len(src) {
		return fmt.Errorf("ema: %d and %d tensors", len(dst), len(src))
	}
	d, s := handles(dst), handles(src)
	return status(C.osv_ema(first(d), first(s), C.int(len(d)), C.double(decay)))
}

// CopyInto copies src into dst in place.
func CopyInto(dst, src Tensor) error { return status(C.osv_copy_(dst.p, src.p)) }

// GeneratorState is g's state as a uint8 tensor.
func GeneratorState(g Generator) (Tensor, error) {
	var out *C.osv_tensor
	err := status(C.osv_generator_get_state(g.p, &out))
	return Tensor{out}, err
}

// SetGeneratorState restores a state from GeneratorState.
func SetGeneratorState(g Generator, state Tensor) error {
	return status(C.osv_generator_set_state(g.p, state.p))
}

// AdamWDevice is AdamW with the step counts (one float32 scalar per
// parameter, incremented), the learning rate and the optional finiteness
// check on the device.
func AdamWDevice(params, expAvg, expAvgSq, steps []Tensor, lr Tensor, beta1, beta2, eps, weightDecay float64, skipUnlessFinite Tensor) error {
	if len(expAvg) != len(params) || len(expAvgSq) != len(params) || len(steps) != len(params) {
		return fmt.Errorf("adamw: %d parameters, %d, %d and %d state tensors", len(params), len(expAvg), len(expAvgSq), len(steps))
	}
	p, m, v, st := handles(params), handles(expAvg), handles(expAvgSq), handles(steps)
	return status(C.osv_adamw_device(first(p), first(m), first(v), first(st), C.int(len(p)), lr.p, C.double(beta1),
		C.double(beta2), C.double(eps), C.double(weightDecay), skipUnlessFinite.p))
}

// ClipGradNormDevice is ClipGradNorm with the norm returned as a tensor on
// the parameters' device.
func ClipGradNormDevice(params []Tensor, maxNorm float64) (Tensor, error) {
	p := handles(params)
	var out *C.osv_tensor
	err := status(C.osv_clip_grad_norm_device(first(p), C.int(len(p)), C.double(maxNorm), &out))
	return Tensor{out}, err
}

// EMADevice is EMA with the weight 1 − decay in a one-element tensor.
func EMADevice(dst, src []Tensor, weight Tensor) error {
	if len(dst) != len(src) {
		return fmt.Errorf("ema: %d and %d tensors", len(dst), len(src))
	}
	d, s := handles(dst), handles(src)
	return status(C.osv_lerp_device(first(d), first(s), C.int(len(d)), weight.p))
}
