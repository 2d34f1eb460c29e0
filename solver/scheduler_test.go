package solver

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

func TestKarrasSigmas(t *testing.T) {
	const lo, hi, rho = 0.002, 700.0, 7.0
	for _, n := range []int{2, 3, 25, 100} {
		s := KarrasSigmas(n, lo, hi, rho)
		require.Len(t, s, n)
		require.InEpsilon(t, hi, s[0], 1e-12)
		require.InEpsilon(t, lo, s[n-1], 1e-12)
		for i := 1; i < n; i++ {
			require.Less(t, s[i], s[i-1], "σ must decrease (n %d, i %d)", n, i)
			// Evenly spaced in σ^{1/ρ}.
			step := math.Pow(s[i], 1/rho) - math.Pow(s[i-1], 1/rho)
			require.InDelta(t, (math.Pow(lo, 1/rho)-math.Pow(hi, 1/rho))/float64(n-1), step, 1e-12)
		}
	}
	one := KarrasSigmas(1, lo, hi, rho)
	require.Len(t, one, 1)
	require.InEpsilon(t, hi, one[0], 1e-12)
	require.Nil(t, KarrasSigmas(0, lo, hi, rho))
}

func TestFrameGuidance(t *testing.T) {
	g := FrameGuidance(1, 3, 14)
	require.Len(t, g, 14)
	require.Equal(t, 1.0, g[0])
	require.Equal(t, 3.0, g[13])
	for i := range g {
		require.InDelta(t, 1+2*float64(i)/13, g[i], 1e-6)
	}
	require.Equal(t, []float64{2}, FrameGuidance(2, 5, 1))
	require.Nil(t, FrameGuidance(1, 3, 0))
}

// sdConfig is Stable Diffusion's Euler scheduler (scaled-linear betas,
// no Karras σ's), which exercises the trained-schedule path.
func sdConfig() SchedulerConfig {
	c := diffusersDefaults()
	c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, BetasScaledLinear
	c.StepsOffset = 1
	return c
}

func newScheduler(t *testing.T, c SchedulerConfig, n int) *Scheduler {
	t.Helper()
	s, err := NewScheduler(c)
	require.NoError(t, err)
	require.NoError(t, s.SetTimesteps(n))
	return s
}

func TestSchedulerSpacings(t *testing.T) {
	for _, c := range []struct {
		spacing string
		n       int
		want    []float32
	}{
		{SpacingLeading, 10, []float32{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}},
		{SpacingLeading, 3, []float32{667, 334, 1}},
		{SpacingTrailing, 10, []float32{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
		{SpacingTrailing, 3, []float32{999, 666, 332}},
		{SpacingLinspace, 10, []float32{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
		{SpacingLinspace, 3, []float32{999, 499.5, 0}},
	} {
		cfg := sdConfig()
		cfg.TimestepSpacing = c.spacing
		s := newScheduler(t, cfg, c.n)
		require.Equal(t, c.want, s.Timesteps(), "%s, %d steps", c.spacing, c.n)
		require.Equal(t, c.n, s.NumSteps())
		sig := s.Sigmas()
		require.Len(t, sig, c.n+1)
		require.Zero(t, sig[c.n], "final σ")
	}
}

// The training σ's of Stable Diffusion's betas are well known: 14.6146 at
// t = 999 and 0.0291675 at t = 0.
func TestSchedulerTrainingSigmas(t *testing.T) {
	cfg := sdConfig()
	cfg.TimestepSpacing = SpacingLinspace
	cfg.FinalSigmasType = FinalSigmaMin
	s := newScheduler(t, cfg, 3)
	sig := s.Sigmas()
	require.InEpsilon(t, 14.614642, sig[0], 1e-5)
	require.InEpsilon(t, 0.0291675, sig[3], 1e-5, "final σ of type sigma_min")
	// The middle step interpolates between timesteps 499 and 500.
	tr := s.trainSigmas
	require.InEpsilon(t, (float64(tr[499])+float64(tr[500]))/2, sig[1], 1e-6)
	require.InEpsilon(t, float64(sig[0]), s.InitNoiseSigma(), 1e-7, "linspace: the largest σ")

	cfg.TimestepSpacing = SpacingLeading
	s = newScheduler(t, cfg, 10)
	m := float64(s.Sigmas()[0])
	require.InEpsilon(t, float64(tr[901]), m, 1e-7)
	require.InEpsilon(t, math.Sqrt(m*m+1), s.InitNoiseSigma(), 1e-7, "leading: √(σ_max²+1)")
}

// Karras σ's with discrete timesteps map each σ back to a fractional
// training timestep; the two ends land on the training schedule's own.
func TestSchedulerKarrasDiscreteTimesteps(t *testing.T) {
	cfg := sdConfig()
	cfg.TimestepSpacing = SpacingLeading
	cfg.UseKarrasSigmas = true
	s := newScheduler(t, cfg, 10)
	ts := s.Timesteps()
	require.InDelta(t, 901, ts[0], 1e-3)
	require.InDelta(t, 1, ts[9], 1e-3)
	for i := 1; i < len(ts); i++ {
		require.Less(t, ts[i], ts[i-1])
	}
	sig := s.Sigmas()
	require.InEpsilon(t, float64(s.trainSigmas[901]), sig[0], 1e-6)
	require.InEpsilon(t, float64(s.trainSigmas[1]), sig[9], 1e-6)

	cfg.UseKarrasSigmas, cfg.UseExponential = false, true
	s = newScheduler(t, cfg, 5)
	sig = s.Sigmas()
	for i := 2; i < 5; i++ {
		require.InEpsilon(t, float64(sig[1])/float64(sig[0]), float64(sig[i])/float64(sig[i-1]), 1e-5,
			"exponential σ's have a constant ratio")
	}
}

func TestSchedulerDefaultIsSVD(t *testing.T) {
	s := newScheduler(t, DefaultSchedulerConfig(), 25)
	sig := s.Sigmas()
	require.Equal(t, float32(700), sig[0])
	require.Equal(t, float32(0.002), sig[24])
	require.Zero(t, sig[25])
	require.Equal(t, 700.000732421875, s.InitNoiseSigma())
	ts := s.Timesteps()
	for i := range ts {
		require.InDelta(t, 0.25*math.Log(float64(sig[i])), ts[i], 1e-6)
	}
}

// Step against the formulas, for each prediction type.
func TestSchedulerStepPredictionTypes(t *testing.T) {
	sc := torch.NewScope()
	defer sc.Close()
	x := noise(t, sc, 11, 3, 2, 3, 4)
	out := noise(t, sc, 12, 1, 2, 3, 4)
	xs, _ := x.Float32s()
	os_, _ := out.Float32s()
	for _, p := range []string{PredictV, PredictEpsilon, PredictSample} {
		cfg := sdConfig()
		cfg.PredictionType = p
		s := newScheduler(t, cfg, 4)
		sig := s.Sigmas()
		i := 1
		sg, next := float64(sig[i]), float64(sig[i+1])
		var got, scaled *torch.Tensor
		var err error
		func() {
			defer torch.Recover(&err)
			got = s.Step(sc, out, x, i)
			scaled = s.ScaleModelInput(sc, x, i)
		}()
		require.NoError(t, err)
		g, _ := got.Float32s()
		sv, _ := scaled.Float32s()
		for k := range xs {
			xv, ov := float64(xs[k]), float64(os_[k])
			var x0 float64
			switch p {
			case PredictV:
				x0 = ov*(-sg/math.Sqrt(sg*sg+1)) + xv/(sg*sg+1)
			case PredictEpsilon:
				x0 = xv - sg*ov
			default:
				x0 = ov
			}
			want := xv + (next-sg)*(xv-x0)/sg
			require.InDelta(t, want, g[k], 1e-5*math.Max(1, math.Abs(want)), "%s, element %d", p, k)
			require.InDelta(t, xv/math.Sqrt(sg*sg+1), sv[k], 1e-6, "scaled input, element %d", k)
		}
	}
}

func TestSchedulerTensorForms(t *testing.T) {
	s := newScheduler(t, DefaultSchedulerConfig(), 4)
	sc := torch.NewScope()
	x := noise(t, sc, 13, 700, 1, 2, 4, 2, 2)
	v := noise(t, sc, 14, 1, 1, 2, 4, 2, 2)
	want := s.Step(sc, v, x, 0)
	wantScaled := s.ScaleModelInput(sc, x, 0)
	gx, err := torch.ToGotorch(x)
	require.NoError(t, err)
	gv, err := torch.ToGotorch(v)
	require.NoError(t, err)
	short, err := torch.ToGotorch(sc.Contiguous(sc.Slice(x, 4, 0, 1)))
	require.NoError(t, err)
	wf, _ := want.Float32s()
	ws, _ := wantScaled.Float32s()
	sc.Close()
	defer func() { torch.Release(gx); torch.Release(gv); torch.Release(short) }()

	start := torch.Live()
	prev, err := s.Advance(gv, gx, 0)
	require.NoError(t, err)
	scaled, err := s.ScaleInput(gx, 0)
	require.NoError(t, err)
	c := torch.NewScope()
	p, err := torch.FromGotorch(c, prev)
	require.NoError(t, err)
	q, err := torch.FromGotorch(c, scaled)
	require.NoError(t, err)
	pf, _ := p.Float32s()
	qf, _ := q.Float32s()
	require.Equal(t, wf, pf)
	require.Equal(t, ws, qf)
	c.Close()
	torch.Release(prev)
	torch.Release(scaled)

	for _, c := range []struct {
		name string
		f    func() error
		want string
	}{
		{"index past the end", func() error { _, err := s.Advance(gv, gx, 4); return err }, "step index 4 out of range for a schedule of 4 steps"},
		{"negative index", func() error { _, err := s.ScaleInput(gx, -1); return err }, "step index -1"},
		{"shape mismatch", func() error { _, err := s.Advance(gv, short, 0); return err }, "differs from sample shape"},
		{"nil scheduler", func() error { _, err := (*Scheduler)(nil).Advance(gv, gx, 0); return err }, "nil scheduler"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.f()
			require.ErrorContains(t, err, c.want)
			t.Log(err)
		})
	}
	require.Equal(t, start, torch.Live(), "native tensors leaked")
	require.ErrorContains(t, s.SetTimesteps(0), "0 inference steps")
	var none *Scheduler
	require.ErrorContains(t, none.SetTimesteps(4), "nil scheduler")
	require.Nil(t, none.Sigmas())
	require.Zero(t, none.InitNoiseSigma())
}

func TestLoadSchedulerConfigRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		p := filepath.Join(dir, name+".json")
		b, ok := v.([]byte)
		if !ok {
			var err error
			b, err = json.Marshal(v)
			require.NoError(t, err)
		}
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	cases := []struct {
		name string
		cfg  any
		want []string
	}{
		{"spacing", map[string]any{"timestep_spacing": "uniform"}, []string{"timestep_spacing", "uniform"}},
		{"betas", map[string]any{"beta_schedule": "sigmoid"}, []string{"beta_schedule", "sigmoid"}},
		{"zero snr", map[string]any{"rescale_betas_zero_snr": true}, []string{"rescale_betas_zero_snr"}},
		{"prediction", map[string]any{"prediction_type": "flow"}, []string{"prediction_type", "flow"}},
		{"interpolation", map[string]any{"interpolation_type": "log_linear"}, []string{"interpolation_type", "log_linear"}},
		{"beta sigmas", map[string]any{"use_beta_sigmas": true}, []string{"use_beta_sigmas"}},
		{"two schedules", map[string]any{"use_karras_sigmas": true, "use_exponential_sigmas": true}, []string{"use_karras_sigmas"}},
		{"timestep type", map[string]any{"timestep_type": "fractional"}, []string{"timestep_type"}},
		{"final sigma", map[string]any{"final_sigmas_type": "one"}, []string{"final_sigmas_type"}},
		{"class", map[string]any{"_class_name": "DDIMScheduler"}, []string{"_class_name", "DDIMScheduler"}},
		{"sigma min", map[string]any{"sigma_min": -1}, []string{"sigma_min"}},
		{"trained betas", map[string]any{"trained_betas": []float64{0.1, 0.2}}, []string{"trained_betas", "2 values"}},
		{"malformed", []byte(`{"beta_start": "x"`), []string{"malformed.json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(c.name, c.cfg)
			_, err := LoadScheduler(p)
			require.Error(t, err)
			t.Log(err)
			require.ErrorContains(t, err, p)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	_, err := LoadSchedulerConfig(filepath.Join(dir, "nope.json"))
	require.ErrorContains(t, err, "nope.json")

	// Keys left out take diffusers' defaults; null σ bounds stay unset.
	c, err := LoadSchedulerConfig(write("partial", map[string]any{"sigma_min": nil, "unknown_key": 3}))
	require.NoError(t, err)
	want := diffusersDefaults()
	require.Equal(t, want, c)
}
