package consistency

import (
	"slices"

	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/osv/loss/huber"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// Levels are a step's noise levels and what follows from them as tensors
// on the data's device, for ApplyLevels.
type Levels struct {
	Sigmas   *torch.Tensor // σ_n … σ_{n+k}: float32 [k+1], decreasing, all positive
	Weight   *torch.Tensor // λ(σ_n): float32 with one element (nil: 1)
	Guidance *torch.Tensor // the teacher's per-frame guidance, solver.GuidanceWeight's tensor (nil: none)
}

// ApplyLevels is Apply with the levels, λ and the guidance taken from lv
// instead of in.Sigmas, in.Weight and in.Guidance (which it ignores): no
// value travels to or from the host, so a training step that calls it can
// be recorded once as a CUDA graph and replayed with the next step's levels
// copied into lv's tensors. The teacher steps with solver.TeacherSolveLevels;
// the loss is Apply's to float32 rounding. It panics with *torch.Error.
func ApplyLevels(s *torch.Scope, in Inputs, lv Levels) Output {
	const op = "consistency_loss"
	if in.Student == nil || in.Target == nil || in.Teacher == nil {
		torch.Failf(op, "student, target and teacher are all needed")
	}
	if lv.Sigmas == nil || lv.Sigmas.Dim() != 1 || lv.Sigmas.Size(0) < 2 {
		torch.Failf(op, "levels %v: want float32 [k+1] with k ≥ 1", lv.Sigmas)
	}
	if !slices.Equal(in.Data.Shape(), in.Noise.Shape()) {
		torch.Failf(op, "data %v and noise %v differ in shape", in.Data.Shape(), in.Noise.Shape())
	}
	c := s.Child()
	defer c.Close()
	k := lv.Sigmas.Size(0) - 1
	b := in.Data.Size(0)
	sn, snk := c.Slice(lv.Sigmas, 0, 0, 1), c.Slice(lv.Sigmas, 0, k, k+1)

	x0 := c.Cast(in.Data, torch.Float32)
	xn := c.Add(x0, c.Mul(c.Cast(in.Noise, torch.Float32), sn))
	sol, real := solver.TeacherSolveLevels(c, in.Teacher, c.Detach(xn), lv.Sigmas, lv.Guidance)
	sol, real = c.Detach(sol), c.Detach(real)

	target := c.Detach(solver.Consistency(c, in.Target, sol, c.Contiguous(c.Expand(snk, b)), in.Consistency))
	fake := solver.Consistency(c, in.Student, xn, c.Contiguous(c.Expand(sn, b)), in.Consistency)

	hc := in.HuberC
	if hc == 0 {
		hc = huber.DefaultC
	}
	l := huber.Apply(c, fake, target, hc, loss.Mean)
	if lv.Weight != nil {
		l = c.Mul(l, c.Sum(lv.Weight, false))
	}
	return Output{Loss: c.Keep(l), Fake: c.Keep(fake), Real: c.Keep(real), Target: c.Keep(target), TeacherSolution: c.Keep(sol)}
}
