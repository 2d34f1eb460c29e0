package torch

import (
	"errors"
	"fmt"
	"math"
	"slices"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter 2019) over
// a fixed list of parameters, updated in place from their gradients, with
// PyTorch's bias correction. With WeightDecay 0 it is Adam. Its state (the
// two moments and the step count) is exposed for checkpoints. The
// hyperparameters may be changed between steps (a learning-rate schedule).
// Close releases the moments.
type AdamW struct {
	// LR is the learning rate, Beta1 and Beta2 the decay rates of the first
	// and second moments, Eps the term added to the denominator, and
	// WeightDecay the decoupled decay (the parameters are multiplied by
	// 1 − LR·WeightDecay each step).
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// Foreach makes Step apply each of the update's operations to every
	// parameter at once (at::_foreach_*: on CUDA, a few multi-tensor
	// kernels for all the parameters sharing a dtype, instead of about
	// seven launches per parameter). The operations and their order are the
	// per-parameter path's.
	Foreach bool
	// Capturable keeps the step count and the learning rate on the
	// parameters' device, so that Step reads nothing from the host and can
	// be recorded in a CUDA graph (CaptureGraph). Set it before the first
	// Step. Step then takes the learning rate from the device, where SetLR
	// writes it (a Step after LR was changed without SetLR is an error), and
	// counts steps in counters there that Steps reads back. Float32
	// parameters on one CUDA device take ATen's fused AdamW kernel (one
	// launch for all of them); the others take the per-parameter update
	// with those numbers on the device. Foreach is then ignored.
	Capturable bool
	// SkipUnlessFinite, with Capturable, is a one-element tensor (the norm
	// ClipGradNormDevice returns, say): while it is not finite, Step leaves
	// the moments and the parameters as they are; the step count still
	// advances.
	SkipUnlessFinite *Tensor

	params   []*Tensor
	expAvg   []*Tensor
	expAvgSq []*Tensor
	step     int64
	steps    []*Tensor // Capturable: each parameter's step count, float32 on its device
	lr       *Tensor   // Capturable: the learning rate, float32 on the first parameter's device
	lrSet    float64   // the value last written to lr
}

// NewAdamW makes an optimiser with zero moments (the parameters' shapes,
// dtypes and devices; counted by Live until Close) for params, float
// tensors on any device that stay the caller's. Parameters without a
// gradient at a step are left alone. A nil or released parameter is an
// error.
func NewAdamW(params []*Tensor, lr, beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
	if err := live("adamw", params...); err != nil {
		return nil, err
	}
	o := &AdamW{LR: lr, Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, params: params}
	for _, p := range params {
		m, err := Zeros(nil, p.Shape(), p.DType(), p.Device())
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("adamw: %w", err)
		}
		v, err := Zeros(nil, p.Shape(), p.DType(), p.Device())
		if err != nil {
			m.Free()
			o.Close()
			return nil, fmt.Errorf("adamw: %w", err)
		}
		o.expAvg = append(o.expAvg, m)
		o.expAvgSq = append(o.expAvgSq, v)
	}
	return o, nil
}

// handlesOf is the handles of ts; it panics with *Error on a nil or
// released tensor.
func handlesOf(ts []*Tensor) []cb.Tensor {
	out := make([]cb.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t.handle()
	}
	return out
}

// liveHandles is handlesOf for functions that return an error: a nil or
// released tensor is reported as an error of op.
func liveHandles(op string, ts []*Tensor) ([]cb.Tensor, error) {
	if err := live(op, ts...); err != nil {
		return nil, err
	}
	return handlesOf(ts), nil
}

// Step applies one update from the parameters' current gradients (it does
// not zero them). A parameter released since NewAdamW, a closed optimiser
// and a gradient that does not fit its parameter are errors; then the step
// count is unchanged.
func (o *AdamW) Step() (err error) {
	defer Recover(&err)
	ps, err := liveHandles("adamw", o.params)
	if err != nil {
		return err
	}
	if o.Capturable {
		return o.stepDevice(ps)
	}
	o.step++
	if err := cb.AdamW(ps, handlesOf(o.expAvg), handlesOf(o.expAvgSq),
		o.LR, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, o.step, o.Foreach); err != nil {
		o.step--
		return fmt.Errorf("adamw: %w", err)
	}
	return nil
}

// stepDevice is Step with Capturable set.
func (o *AdamW) stepDevice(ps []cb.Tensor) error {
	if len(o.expAvg) != len(o.params) {
		return errors.New("adamw: step of a closed optimiser")
	}
	if o.lr == nil {
		if err := o.deviceState(); err != nil {
			return err
		}
	}
	if o.LR != o.lrSet {
		return fmt.Errorf("adamw: LR changed to %g without SetLR (with Capturable the learning rate is read on the device, where it is %g)", o.LR, o.lrSet)
	}
	var skip cb.Tensor
	if o.SkipUnlessFinite != nil {
		if err := live("adamw", o.SkipUnlessFinite); err != nil {
			return err
		}
		skip = o.SkipUnlessFinite.h
	}
	if err := cb.AdamWDevice(ps, handlesOf(o.expAvg), handlesOf(o.expAvgSq), handlesOf(o.steps), o.lr.h,
		o.Beta1, o.Beta2, o.Eps, o.WeightDecay, skip); err != nil {
		return fmt.Errorf("adamw: %w", err)
	}
	o.step++
	return nil
}

// deviceState makes the device-side step counters (from the host's count)
// and learning rate.
func (o *AdamW) deviceState() error {
	if len(o.params) == 0 {
		return errors.New("adamw: no parameters")
	}
	for _, p := range o.params {
		t, err := Full(nil, []int64{}, float64(o.step), Float32, p.Device())
		if err != nil {
			return fmt.Errorf("adamw: %w", err)
		}
		o.steps = append(o.steps, t)
	}
	lr, err := Full(nil, []int64{}, o.LR, Float32, o.params[0].Device())
	if err != nil {
		return fmt.Errorf("adamw: %w", err)
	}
	o.lr, o.lrSet = lr, o.LR
	return nil
}

// SetLR sets LR and, once a Capturable optimiser has taken a step, writes
// it to the device (ordinary work: call it between replays of a graph, not
// while one records). A closed optimiser is an error.
func (o *AdamW) SetLR(lr float64) error {
	if len(o.expAvg) != len(o.params) {
		return errors.New("adamw: SetLR on a closed optimiser")
	}
	o.LR = lr
	if o.lr == nil {
		return nil
	}
	if err := fill(o.lr, lr); err != nil {
		return fmt.Errorf("adamw: %w", err)
	}
	o.lrSet = lr
	return nil
}

// fill sets every element of t to v.
func fill(t *Tensor, v float64) error {
	src, err := Full(nil, t.Shape(), v, t.DType(), t.Device())
	if err != nil {
		return err
	}
	defer src.Free()
	return cb.CopyInto(t.h, src.h)
}

// Steps is the number of updates made (or set by Restore). With
// Capturable it is read from the device, and so counts the updates that
// graph replays made; it is -1 if that read fails.
func (o *AdamW) Steps() int64 {
	if o.Capturable && len(o.steps) > 0 && !o.steps[0].Released() {
		v, err := o.steps[0].Item()
		if err != nil {
			return -1
		}
		return int64(v)
	}
	return o.step
}

// State returns the moments by parameter index (exp_avg.i, exp_avg_sq.i)
// for a checkpoint (SaveFile writes it as it is); the tensors stay the
// optimiser's. It is empty once the optimiser is closed.
func (o *AdamW) State() map[string]*Tensor {
	out := make(map[string]*Tensor, 2*len(o.expAvg))
	for i := range o.expAvg {
		out[fmt.Sprintf("exp_avg.%d", i)] = o.expAvg[i]
		out[fmt.Sprintf("exp_avg_sq.%d", i)] = o.expAvgSq[i]
	}
	return out
}

// Restore copies moments saved by State (converted to the moments' dtype
// and device) and sets the step count. A closed optimiser, and a moment
// missing, nil, released or of another shape, are errors; then the step
// count is unchanged, though moments before the failing one may have been
// copied.
func (o *AdamW) Restore(state map[string]*Tensor, steps int64) error {
	if len(o.expAvg) != len(o.params) {
		return errors.New("adamw: restore into a closed optimiser")
	}
	for i := range o.params {
		for name, dst := range map[string]*Tensor{fmt.Sprintf("exp_avg.%d", i): o.expAvg[i], fmt.Sprintf("exp_avg_sq.%d", i): o.expAvgSq[i]} {
			src, ok := state[name]
			if !ok {
				return fmt.Errorf("adamw: state has no %s", name)
			}
			if err := live("adamw", src); err != nil {
				return fmt.Errorf("adamw: %s: %w", name, err)
			}
			if !slices.Equal(src.Shape(), dst.Shape()) {
				return fmt.Errorf("adamw: %s: shape %v, want %v", name, src.Shape(), dst.Shape())
			}
			if err := cb.CopyInto(dst.handle(), src.handle()); err != nil {
				return fmt.Errorf("adamw: %s: %w", name, err)
			}
		}
	}
	for _, t := range o.steps {
		if err := fill(t, float64(steps)); err != nil {
			return fmt.Errorf("adamw: step count: %w", err)
		}
	}
	o.step = steps
	return nil
}

// Close releases the optimiser's state (not the parameters); Step and
// Restore then return an error. It is safe to call twice.
func (o *AdamW) Close() {
	for _, t := range append(append(o.expAvg, o.expAvgSq...), o.steps...) {
		t.Free()
	}
	if o.lr != nil {
		o.lr.Free()
	}
	o.expAvg, o.expAvgSq, o.steps, o.lr = nil, nil, nil, nil
}

// ClipGradNorm scales the parameters' gradients, in place, so that their
// global L2 norm is at most maxNorm (maxNorm ≤ 0: no scaling) and returns
// the norm before scaling (0 when no parameter has a gradient).
// Parameters without a gradient are skipped. A non-finite norm (a NaN or
// Inf gradient) is returned with nothing scaled: callers skip the step. A
// nil or released parameter is an error.
func ClipGradNorm(params []*Tensor, maxNorm float64) (float64, error) {
	hs, err := liveHandles("clip_grad_norm", params)
	if err != nil {
		return 0, err
	}
	return cb.ClipGradNorm(hs, maxNorm, false)
}

// ClipGradNormForeach is ClipGradNorm with the per-parameter norms taken,
// and the gradients scaled, over all parameters at once (at::_foreach_*:
// a few kernels on CUDA instead of about four launches per parameter).
// The squared norms are summed on the host in ClipGradNorm's order, so the
// results are ClipGradNorm's wherever the per-tensor norms are (on the CPU,
// to the bit; CUDA's multi-tensor norm kernel may round differently).
// Gradients other than float32 take ClipGradNorm's path.
func ClipGradNormForeach(params []*Tensor, maxNorm float64) (float64, error) {
	hs, err := liveHandles("clip_grad_norm", params)
	if err != nil {
		return 0, err
	}
	return cb.ClipGradNorm(hs, maxNorm, true)
}

// ClipGradNormDevice is ClipGradNorm for work recorded in a CUDA graph:
// the norm stays on the parameters' device, returned as a float32 scalar
// tensor owned by s (the caller when s is nil), and the gradients are
// multiplied there by min(1, maxNorm/(norm + 1e-6)) (maxNorm > 0; nothing
// is scaled otherwise). When the norm is not finite the factor is 0 (a NaN
// gradient stays NaN): give the norm to AdamW.SkipUnlessFinite, and check
// it after the step. With no gradient at all the norm is 0. No parameters,
// and a nil or released one, are errors.
func ClipGradNormDevice(s *Scope, params []*Tensor, maxNorm float64) (*Tensor, error) {
	hs, err := liveHandles("clip_grad_norm", params)
	if err != nil {
		return nil, err
	}
	h, err := cb.ClipGradNormDevice(hs, maxNorm)
	if err != nil {
		return nil, fmt.Errorf("clip_grad_norm: %w", err)
	}
	return own(s, h)
}

// EMADevice is EMA with its weight 1 − decay in a one-element tensor on
// the device: dst ← dst + weight·(src − dst), so that a step recorded in a
// CUDA graph can switch the update off (weight 0) from a device-side
// value, a gradient norm's finiteness say. With weight = 1 − decay it is
// EMA's update. Lists of different lengths, a nil or released tensor, and
// a weight of more than one element are errors.
func EMADevice(dst, src []*Tensor, weight *Tensor) error {
	d, err := liveHandles("ema", dst)
	if err != nil {
		return err
	}
	sr, err := liveHandles("ema", src)
	if err != nil {
		return err
	}
	if err := live("ema", weight); err != nil {
		return err
	}
	if err := cb.EMADevice(d, sr, weight.h); err != nil {
		return fmt.Errorf("ema: %w", err)
	}
	return nil
}

// Finite reports whether v is neither NaN nor infinite.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ZeroGrads drops the gradients of params; a nil or released parameter is
// an error (those before it are dropped).
func ZeroGrads(params []*Tensor) error {
	for _, p := range params {
		if err := p.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

// EMA sets dst ← decay·dst + (1 − decay)·src for each pair, in place and
// outside autograd (src is converted to dst's dtype): an exponential moving
// average of weights. Lists of different lengths, a nil or released
// tensor, and shapes that do not broadcast are errors.
func EMA(dst, src []*Tensor, decay float64) error {
	d, err := liveHandles("ema", dst)
	if err != nil {
		return err
	}
	sr, err := liveHandles("ema", src)
	if err != nil {
		return err
	}
	return cb.EMA(d, sr, decay)
}

// CopyInto copies src's values into dst in place, outside autograd,
// converting dtype and device (src broadcasts to dst's shape). A nil or
// released tensor, or shapes that do not broadcast, is an error.
func CopyInto(dst, src *Tensor) error {
	if err := live("copy", dst, src); err != nil {
		return err
	}
	return cb.CopyInto(dst.h, src.h)
}

// State is the generator's state (a Uint8 tensor on the CPU), owned by s
// (the caller when s is nil), for checkpoints. A nil or closed generator,
// or a closed scope, is an error.
func (g *Generator) State(s *Scope) (*Tensor, error) {
	if g == nil {
		return nil, errors.New("generator state: nil generator")
	}
	h, err := cb.GeneratorState(g.g)
	if err != nil {
		return nil, fmt.Errorf("generator state: %w", err)
	}
	return own(s, h)
}

// SetState restores a state from State, so that the generator draws the
// same numbers again. A nil or closed generator, a nil or released state,
// and a tensor that is not such a state are errors.
func (g *Generator) SetState(state *Tensor) error {
	if g == nil {
		return errors.New("generator state: nil generator")
	}
	if err := live("generator state", state); err != nil {
		return err
	}
	if err := cb.SetGeneratorState(g.g, state.h); err != nil {
		return fmt.Errorf("generator state: %w", err)
	}
	return nil
}
