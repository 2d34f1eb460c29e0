package solver

import "github.com/onestepvideo/osv-go/torch"

// TrainingSigmas is OSV's training grid: n Karras noise levels over
// [sigmaMin, sigmaMax] (the paper samples 100), from the largest down, so
// that the index grows as the noise falls (OSV.md section 2).
func TrainingSigmas(n int, sigmaMin, sigmaMax, rho float64) []float64 {
	return KarrasSigmas(n, sigmaMin, sigmaMax, rho)
}

// TeacherSolve is OSV's multi-step teacher ODE solver (OSV.md section 4):
// k = len(sigmas) − 1 guided Euler steps from x at sigmas[0] through
// sigmas[1..k] (decreasing, all positive but possibly the last), with the
// per-frame classifier-free guidance of SampleEulerCFG:
//
//	x̂_{j+1} = x̂_j + (σ_{j+1} − σ_j)·(x̂_j − D_g(x̂_j; σ_j))/σ_j
//
// It returns x̂_k (x's dtype) and the teacher's last guided estimate
// D_g(x̂_{k−1}; σ_{k−1}) in float32 — the "real" sample OSV's discriminator
// sees, obtained without an extra model call. With k = 1 it is exactly one
// Euler step (AnimateLCM's single-step teacher). Both results are owned
// by s and carry no gradient when the teacher's weights require none. It
// panics with *torch.Error.
func TeacherSolve(s *torch.Scope, d Denoiser, x *torch.Tensor, sigmas []float64, guidance []float64) (solution, lastDenoised *torch.Tensor) {
	const op = "teacher_solve"
	if d == nil {
		torch.Failf(op, "nil denoiser")
	}
	if len(sigmas) < 2 {
		torch.Failf(op, "%d noise levels: want at least 2 (k ≥ 1 steps)", len(sigmas))
	}
	if x.Dim() != 5 {
		torch.Failf(op, "x: shape %v, want [batch, frames, channels, height, width]", x.Shape())
	}
	checkFloat(op, "x", x)
	if int64(len(guidance)) != x.Size(1) {
		torch.Failf(op, "%d guidance scales for %d frames", len(guidance), x.Size(1))
	}
	for j := 0; j+1 < len(sigmas); j++ {
		if !(sigmas[j] > 0) || !(sigmas[j+1] < sigmas[j]) || sigmas[j+1] < 0 {
			torch.Failf(op, "sigmas %v: want strictly decreasing, positive but possibly the last", sigmas)
		}
	}
	c := s.Child()
	defer c.Close()
	weight := guidanceWeight(c, op, guidance, x.Device())
	cur := x
	var last *torch.Tensor
	for j := 0; j+1 < len(sigmas); j++ {
		next, dg := eulerCFGStep(c, d, cur, sigmas[j], sigmas[j+1], weight)
		c.Drop(last)
		if cur != x {
			c.Drop(cur)
		}
		cur, last = next, dg
	}
	return c.Keep(cur), c.Keep(last)
}
