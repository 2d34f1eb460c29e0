package solver

import (
	"errors"
	"fmt"
	"slices"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

var errNilScheduler = errors.New("scheduler: nil scheduler")

// checkStep panics unless step i exists in the current schedule.
func (s *Scheduler) checkStep(op string, i int) {
	if s == nil {
		torch.Failf(op, "nil scheduler")
	}
	if i < 0 || i >= len(s.timesteps) {
		torch.Failf(op, "step index %d out of range for a schedule of %d steps", i, len(s.timesteps))
	}
}

// checkFloat panics unless t has a floating-point dtype.
func checkFloat(op, name string, t *torch.Tensor) {
	if !t.DType().IsFloat() {
		torch.Failf(op, "%s: dtype %s, want a floating-point type", name, t.DType())
	}
}

// scalar is a 0-d float32 tensor on like's device (diffusers keeps σ as a
// float32 tensor, so every coefficient below is rounded to float32).
func scalar(s *torch.Scope, like *torch.Tensor, v float32) *torch.Tensor {
	t, err := torch.Full(s, nil, float64(v), torch.Float32, like.Device())
	if err != nil {
		torch.Failf("full", "%v", err)
	}
	return t
}

// ScaleModelInput is x/√(σ_i²+1), the model input at step i. It panics
// with *torch.Error.
func (s *Scheduler) ScaleModelInput(sc *torch.Scope, x *torch.Tensor, stepIndex int) *torch.Tensor {
	defer torch.Annotate("scheduler")
	s.checkStep("scale_model_input", stepIndex)
	checkFloat("scale_model_input", "sample", x)
	c := sc.Child()
	defer c.Close()
	sg := s.sigmas[stepIndex]
	return c.Keep(c.Div(x, scalar(c, x, sqrt32(float32(sg*sg)+1))))
}

// Step is one Euler step from σ_i to σ_{i+1}: the denoised estimate x0
// from the model output (v-prediction: x0 = v·(−σ/√(σ²+1)) + x/(σ²+1);
// epsilon: x0 = x − σ·ε; sample: x0 = the output), then
//
//	x ← x + (σ_{i+1} − σ_i)·(x − x0)/σ_i,
//
// in float32, the result cast to modelOutput's dtype as diffusers does.
// It panics with *torch.Error.
func (s *Scheduler) Step(sc *torch.Scope, modelOutput, x *torch.Tensor, stepIndex int) *torch.Tensor {
	defer torch.Annotate("scheduler")
	s.checkStep("step", stepIndex)
	checkFloat("step", "sample", x)
	checkFloat("step", "model output", modelOutput)
	if !slices.Equal(modelOutput.Shape(), x.Shape()) {
		torch.Failf("step", "model output shape %v differs from sample shape %v", modelOutput.Shape(), x.Shape())
	}
	c := sc.Child()
	defer c.Close()
	sg, next := s.sigmas[stepIndex], s.sigmas[stepIndex+1]
	xf := c.Cast(x, torch.Float32)
	var x0 *torch.Tensor
	switch s.cfg.PredictionType {
	case PredictV:
		den := float32(sg*sg) + 1
		cOut := -sg / sqrt32(den)
		x0 = c.Add(c.Mul(modelOutput, scalar(c, x, cOut)), c.Div(xf, scalar(c, x, den)))
	case PredictEpsilon:
		x0 = c.Sub(xf, c.Mul(scalar(c, x, sg), modelOutput))
	default: // sample
		x0 = modelOutput
	}
	deriv := c.Div(c.Sub(xf, x0), scalar(c, x, sg))
	prev := c.Add(xf, c.Mul(deriv, scalar(c, x, next-sg)))
	return c.Keep(c.Cast(prev, modelOutput.DType()))
}

// ScaleInput is ScaleModelInput on gotorch tensors; the result belongs to
// the caller.
func (s *Scheduler) ScaleInput(x gotorch.Tensor, stepIndex int) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if s == nil {
		return gotorch.Tensor{}, errNilScheduler
	}
	sc := torch.NewScope()
	defer sc.Close()
	xt, err := torch.FromGotorch(sc, x)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("scheduler: sample: %w", err)
	}
	return torch.ToGotorch(s.ScaleModelInput(sc, xt, stepIndex))
}

// Advance is Step on gotorch tensors: the sample at σ_{i+1} from the
// model's output at step i. The result belongs to the caller.
func (s *Scheduler) Advance(modelOutput, x gotorch.Tensor, stepIndex int) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if s == nil {
		return gotorch.Tensor{}, errNilScheduler
	}
	sc := torch.NewScope()
	defer sc.Close()
	mo, err := torch.FromGotorch(sc, modelOutput)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("scheduler: model output: %w", err)
	}
	xt, err := torch.FromGotorch(sc, x)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("scheduler: sample: %w", err)
	}
	return torch.ToGotorch(s.Step(sc, mo, xt, stepIndex))
}
