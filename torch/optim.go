package torch

import (
	"fmt"
	"math"
	"slices"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter 2019) over
// a fixed list of parameters, updated in place from their gradients. With
// WeightDecay 0 it is Adam. Its state (the two moments and the step count)
// is exposed for checkpoints.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64

	params   []*Tensor
	expAvg   []*Tensor
	expAvgSq []*Tensor
	step     int64
}

// NewAdamW makes an optimiser with zero moments for params (float
// tensors on any device).
func NewAdamW(params []*Tensor, lr, beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
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

func handlesOf(ts []*Tensor) []cb.Tensor {
	out := make([]cb.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t.handle()
	}
	return out
}

// Step applies one update from the parameters' current gradients.
func (o *AdamW) Step() (err error) {
	defer Recover(&err)
	o.step++
	if err := cb.AdamW(handlesOf(o.params), handlesOf(o.expAvg), handlesOf(o.expAvgSq),
		o.LR, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, o.step); err != nil {
		o.step--
		return fmt.Errorf("adamw: %w", err)
	}
	return nil
}

// Steps is the number of updates made.
func (o *AdamW) Steps() int64 { return o.step }

// State returns the moments by parameter index (exp_avg.i, exp_avg_sq.i)
// for a checkpoint; the tensors stay the optimiser's.
func (o *AdamW) State() map[string]*Tensor {
	out := make(map[string]*Tensor, 2*len(o.params))
	for i := range o.params {
		out[fmt.Sprintf("exp_avg.%d", i)] = o.expAvg[i]
		out[fmt.Sprintf("exp_avg_sq.%d", i)] = o.expAvgSq[i]
	}
	return out
}

// Restore copies moments saved by State and sets the step count.
func (o *AdamW) Restore(state map[string]*Tensor, steps int64) error {
	for i := range o.params {
		for name, dst := range map[string]*Tensor{fmt.Sprintf("exp_avg.%d", i): o.expAvg[i], fmt.Sprintf("exp_avg_sq.%d", i): o.expAvgSq[i]} {
			src, ok := state[name]
			if !ok {
				return fmt.Errorf("adamw: state has no %s", name)
			}
			if !slices.Equal(src.Shape(), dst.Shape()) {
				return fmt.Errorf("adamw: %s: shape %v, want %v", name, src.Shape(), dst.Shape())
			}
			if err := cb.CopyInto(dst.handle(), src.handle()); err != nil {
				return fmt.Errorf("adamw: %s: %w", name, err)
			}
		}
	}
	o.step = steps
	return nil
}

// Close releases the optimiser's state.
func (o *AdamW) Close() {
	for _, t := range append(o.expAvg, o.expAvgSq...) {
		t.Free()
	}
	o.expAvg, o.expAvgSq = nil, nil
}

// ClipGradNorm scales the parameters' gradients so that their global L2
// norm is at most maxNorm (maxNorm ≤ 0: no scaling) and returns the norm
// before scaling. A non-finite norm (a NaN or Inf gradient) is returned
// with nothing scaled: callers skip the step.
func ClipGradNorm(params []*Tensor, maxNorm float64) (float64, error) {
	return cb.ClipGradNorm(handlesOf(params), maxNorm)
}

// Finite reports whether v is neither NaN nor infinite.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ZeroGrads drops the gradients of params.
func ZeroGrads(params []*Tensor) error {
	for _, p := range params {
		if err := p.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

// EMA sets dst ← decay·dst + (1 − decay)·src for each pair, in place.
func EMA(dst, src []*Tensor, decay float64) error {
	return cb.EMA(handlesOf(dst), handlesOf(src), decay)
}

// CopyInto copies src's values into dst in place (same shape).
func CopyInto(dst, src *Tensor) error { return cb.CopyInto(dst.handle(), src.handle()) }

// State is the generator's state, owned by s, for checkpoints.
func (g *Generator) State(s *Scope) (*Tensor, error) {
	h, err := cb.GeneratorState(g.g)
	if err != nil {
		return nil, fmt.Errorf("generator state: %w", err)
	}
	return newTensor(s, h), nil
}

// SetState restores a state from State.
func (g *Generator) SetState(state *Tensor) error {
	if err := cb.SetGeneratorState(g.g, state.handle()); err != nil {
		return fmt.Errorf("generator state: %w", err)
	}
	return nil
}
