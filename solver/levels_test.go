package solver

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// twoBranch is a Gaussian denoiser whose unconditional branch is half the
// conditional one, so that guidance changes the result.
type twoBranch struct{}

func (twoBranch) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	b := x.Size(0)
	sg := s.Reshape(s.Cast(sigma, torch.Float32), b, 1, 1, 1, 1)
	d := s.Div(s.Cast(x, torch.Float32), s.AddScalar(s.Square(sg), 1))
	if !cond {
		d = s.MulScalar(d, 0.5)
	}
	return d
}

// The levels in a tensor give TeacherSolve's solution and last estimate to
// float32 rounding, with guidance and without.
func TestTeacherSolveLevelsMatchesTeacherSolve(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(4)
	defer g.Close()
	x, _ := g.Randn(s, []int64{2, 3, 4, 3, 3}, torch.Float32, torch.CPU)
	xs := s.MulScalar(x, 14)
	sigmas := KarrasSigmas(100, 0.002, 80, 7)[40:46] // k = 5, all positive
	lv := make([]float32, len(sigmas))
	for i, v := range sigmas {
		lv[i] = float32(v)
	}
	levels, err := torch.FromFloat32(s, lv, []int64{int64(len(lv))}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	for _, guidance := range [][]float64{FrameGuidance(1, 2.5, 3), ones(3)} {
		runOK(t, func() {
			sol, last := TeacherSolve(s, twoBranch{}, xs, sigmas, guidance)
			sol2, last2 := TeacherSolveLevels(s, twoBranch{}, xs, levels, GuidanceWeight(s, guidance, torch.CPU))
			for name, p := range map[string][2]*torch.Tensor{"solution": {sol, sol2}, "last": {last, last2}} {
				a, b := values(t, p[0]), values(t, p[1])
				var scale float64
				for _, v := range a {
					scale = max(scale, math.Abs(float64(v)))
				}
				require.Positive(t, scale)
				for i := range a {
					require.InDelta(t, a[i], b[i], 2e-6*scale, "guidance %v, %s[%d]", guidance, name, i)
				}
			}
		})
	}
	var err2 error
	func() {
		defer torch.Recover(&err2)
		TeacherSolveLevels(s, twoBranch{}, xs, s.Slice(levels, 0, 0, 1), nil)
	}()
	require.ErrorContains(t, err2, "levels")
}
