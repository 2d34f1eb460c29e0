// Package consistency is OSV's consistency distillation loss (OSV.md
// section 4): from clean latents x0 and noise ε at a grid index n,
//
//	x_n     = x0 + σ_n·ε
//	x̂_{n+k} = the teacher's k guided Euler steps from x_n (solver.TeacherSolve)
//	L_CD    = λ(σ_n)·d(f_θ(x_n, σ_n), f_θ⁻(x̂_{n+k}, σ_{n+k}))
//
// with f the consistency function (solver.Consistency), θ the student,
// θ⁻ its EMA target, and d the pseudo-Huber distance (package huber),
// averaged over elements. Besides the loss, Apply returns what OSV's
// discriminator needs: the student's output (the fake sample, with its
// gradient) and the teacher's last guided estimate (the real sample, free:
// the solver computed it).
//
// Entry point: Apply, on engine tensors.
package consistency

import (
	"slices"

	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/osv/loss/huber"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// Inputs are one step's models and data.
type Inputs struct {
	Student solver.Denoiser // f_θ's denoiser (its conditional branch; its trainable weights get the gradient)
	Target  solver.Denoiser // f_θ⁻'s denoiser: the EMA target, without gradient
	Teacher solver.Denoiser // the frozen teacher, both branches (for guidance)

	Data  *torch.Tensor // x0: clean latents [B, F, C, h, w]
	Noise *torch.Tensor // ε: unit noise of x0's shape

	// Sigmas are σ_n … σ_{n+k}: the k+1 grid levels the teacher steps
	// through (decreasing; k ≥ 1).
	Sigmas   []float64
	Guidance []float64 // the teacher's per-frame guidance (solver.FrameGuidance)

	Consistency solver.ConsistencyOptions
	HuberC      float64                     // pseudo-Huber c (huber.DefaultC when 0)
	Weight      func(sigma float64) float64 // λ(σ) (1 when nil)
}

// Output is the loss and the samples the adversarial losses use.
type Output struct {
	Loss            *torch.Tensor // 0-d float32, differentiable in the student's weights
	Fake            *torch.Tensor // f_θ(x_n, σ_n), float32, with its gradient
	Real            *torch.Tensor // the teacher's D_g(x̂_{n+k−1}; σ_{n+k−1}), float32, detached
	Target          *torch.Tensor // f_θ⁻(x̂_{n+k}, σ_{n+k}), float32, detached
	TeacherSolution *torch.Tensor // x̂_{n+k}, detached
}

// Apply computes the loss; every result is owned by s. It panics with
// *torch.Error.
func Apply(s *torch.Scope, in Inputs) Output {
	const op = "consistency_loss"
	if in.Student == nil || in.Target == nil || in.Teacher == nil {
		torch.Failf(op, "student, target and teacher are all needed")
	}
	if len(in.Sigmas) < 2 {
		torch.Failf(op, "%d grid levels: want σ_n … σ_{n+k} with k ≥ 1", len(in.Sigmas))
	}
	if !slices.Equal(in.Data.Shape(), in.Noise.Shape()) {
		torch.Failf(op, "data %v and noise %v differ in shape", in.Data.Shape(), in.Noise.Shape())
	}
	c := s.Child()
	defer c.Close()
	k := len(in.Sigmas) - 1
	sn, snk := in.Sigmas[0], in.Sigmas[k]

	x0 := c.Cast(in.Data, torch.Float32)
	xn := c.Add(x0, c.MulScalar(c.Cast(in.Noise, torch.Float32), sn))
	sol, real := solver.TeacherSolve(c, in.Teacher, c.Detach(xn), in.Sigmas, in.Guidance)
	sol, real = c.Detach(sol), c.Detach(real)

	sigma := func(v float64) *torch.Tensor {
		t, err := torch.Full(c, []int64{xn.Size(0)}, v, torch.Float32, xn.Device())
		if err != nil {
			torch.Failf(op, "%v", err)
		}
		return t
	}
	target := c.Detach(solver.Consistency(c, in.Target, sol, sigma(snk), in.Consistency))
	fake := solver.Consistency(c, in.Student, xn, sigma(sn), in.Consistency)

	hc := in.HuberC
	if hc == 0 {
		hc = huber.DefaultC
	}
	l := huber.Apply(c, fake, target, hc, loss.Mean)
	if in.Weight != nil {
		l = c.MulScalar(l, in.Weight(sn))
	}
	return Output{Loss: c.Keep(l), Fake: c.Keep(fake), Real: c.Keep(real), Target: c.Keep(target), TeacherSolution: c.Keep(sol)}
}
