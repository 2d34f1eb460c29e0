package solver

import (
	"github.com/onestepvideo/osv-go/torch"
)

// GuidanceWeight is the per-frame guidance scales as the [1, F, 1, 1, 1]
// float32 tensor TeacherSolveLevels takes, on dev and owned by s; nil when
// every scale is 1 (no guidance). It uploads from the host: make it once,
// outside a CUDA graph's recording. It panics with *torch.Error.
func GuidanceWeight(s *torch.Scope, guidance []float64, dev torch.Device) *torch.Tensor {
	return guidanceWeight(s, "guidance_weight", guidance, dev)
}

// TeacherSolveLevels is TeacherSolve with the noise levels in a tensor:
// levels is float32 [k+1] on x's device (σ_n … σ_{n+k}, decreasing and
// all positive; not checked, since reading them would leave the device)
// and weight is GuidanceWeight's tensor (nil: the conditional branch
// alone). No value is read back to the host, so a step that calls it can be
// recorded once in a CUDA graph (torch.CaptureGraph) and replayed with
// other levels copied into the same tensor. The update is TeacherSolve's,
//
//	x̂_{j+1} = x̂_j + (σ_{j+1} − σ_j)·(x̂_j − D_g(x̂_j; σ_j))/σ_j
//
// with σ_{j+1} − σ_j taken in float32 (TeacherSolve takes it in float64),
// so the two agree to float32 rounding. It returns x̂_k (x's dtype) and the
// last guided estimate in float32, owned by s. It panics with *torch.Error.
func TeacherSolveLevels(s *torch.Scope, d Denoiser, x, levels, weight *torch.Tensor) (solution, lastDenoised *torch.Tensor) {
	const op = "teacher_solve"
	if d == nil {
		torch.Failf(op, "nil denoiser")
	}
	if x.Dim() != 5 {
		torch.Failf(op, "x: shape %v, want [batch, frames, channels, height, width]", x.Shape())
	}
	checkFloat(op, "x", x)
	if levels.Dim() != 1 || levels.Size(0) < 2 || levels.DType() != torch.Float32 {
		torch.Failf(op, "levels: %v %v, want float32 [k+1] with k ≥ 1", levels.DType(), levels.Shape())
	}
	if weight != nil && (weight.Dim() != 5 || weight.Size(1) != x.Size(1)) {
		torch.Failf(op, "guidance weight %v for %d frames, want [1, %d, 1, 1, 1]", weight.Shape(), x.Size(1), x.Size(1))
	}
	c := s.Child()
	defer c.Close()
	b := x.Size(0)
	k := int(levels.Size(0)) - 1
	cur := x
	var last *torch.Tensor
	for j := range k {
		st := c.Child()
		out := func(name string, t *torch.Tensor) *torch.Tensor {
			if t == nil || t.Dim() != 5 || t.Size(0) != b {
				torch.Failf(op, "%s denoiser output %v, want x's shape %v", name, t, x.Shape())
			}
			return st.Cast(t, torch.Float32)
		}
		sig := st.Slice(levels, 0, int64(j), int64(j+1)) // [1]
		next := st.Slice(levels, 0, int64(j+1), int64(j+2))
		dg := guided(st, d, cur, st.Expand(sig, b), weight, out)
		xf := st.Cast(cur, torch.Float32)
		deriv := st.Div(st.Sub(xf, dg), sig)
		nx := st.Keep(st.Cast(st.Add(xf, st.Mul(deriv, st.Sub(next, sig))), x.DType()))
		dg = st.Keep(dg)
		st.Close()
		c.Drop(last)
		if cur != x {
			c.Drop(cur)
		}
		cur, last = nx, dg
	}
	return c.Keep(cur), c.Keep(last)
}
