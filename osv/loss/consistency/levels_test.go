package consistency

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// ApplyLevels gives Apply's loss, samples and student gradient to float32
// rounding, with and without the LCM boundary, with and without λ.
func TestApplyLevelsMatchesApply(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, _ := torch.NewGenerator(3)
	defer g.Close()
	shape := []int64{2, 2, 4, 3, 3}
	x0, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	eps, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	mc, _ := g.Randn(s, shape, torch.Float32, torch.CPU)
	mu := s.MulScalar(mc, 0.5)
	sigmas := solver.KarrasSigmas(20, 0.002, 80, 7)[6:12] // k = 5
	lv := make([]float32, len(sigmas))
	for i, v := range sigmas {
		lv[i] = float32(v)
	}
	levels, err := torch.FromFloat32(s, lv, []int64{int64(len(lv))}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	guidance := []float64{1, 2.5}
	lambda := func(sg float64) float64 { return (sg*sg + 1) / (sg * sg) }
	for _, lcm := range []bool{false, true} {
		for _, weighted := range []bool{false, true} {
			run1 := func(levelled bool) (Output, []float64, float64) {
				w, _ := torch.Full(nil, []int64{1}, 1, torch.Float32, torch.CPU)
				defer w.Free()
				require.NoError(t, w.SetRequiresGrad(true))
				in := Inputs{
					Student: &gaussData{cond: mc, uncond: mu, v: 0.25, w: w, b: 0.3},
					Target:  &gaussData{cond: mc, uncond: mu, v: 0.25},
					Teacher: &gaussData{cond: mc, uncond: mu, v: 0.25},
					Data:    x0, Noise: eps, Sigmas: sigmas, Guidance: guidance, HuberC: 0.1,
					Consistency: solver.ConsistencyOptions{LCMBoundary: lcm},
				}
				var out Output
				run(t, func() {
					if !levelled {
						if weighted {
							in.Weight = lambda
						}
						out = Apply(s, in)
						return
					}
					l := Levels{Sigmas: levels, Guidance: solver.GuidanceWeight(s, guidance, torch.CPU)}
					if weighted {
						l.Weight, _ = torch.Full(s, []int64{1}, lambda(sigmas[0]), torch.Float32, torch.CPU)
					}
					in.Sigmas, in.Guidance = nil, nil // ignored
					out = ApplyLevels(s, in, l)
				})
				require.NoError(t, torch.Backward(out.Loss))
				gw, err := w.Grad(s)
				require.NoError(t, err)
				lossV, err := out.Loss.Item()
				require.NoError(t, err)
				return out, f64(t, gw), lossV
			}
			a, ga, la := run1(false)
			b, gb, lb := run1(true)
			what := map[string]bool{"lcm": lcm, "weighted": weighted}
			require.InDelta(t, la, lb, 1e-5*math.Abs(la), "%v: loss", what)
			require.InDelta(t, ga[0], gb[0], 1e-5*math.Abs(ga[0]), "%v: the student's gradient", what)
			for name, p := range map[string][2]*torch.Tensor{"fake": {a.Fake, b.Fake}, "real": {a.Real, b.Real},
				"target": {a.Target, b.Target}, "solution": {a.TeacherSolution, b.TeacherSolution}} {
				got, err := p[1].Float32s()
				require.NoError(t, err)
				require.Less(t, relTo(got, f64(t, p[0])), 1e-5, "%v: %s", what, name)
			}
		}
	}
}
