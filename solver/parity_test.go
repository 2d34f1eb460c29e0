package solver

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// schedulerCase is io/scheduler.json.
type schedulerCase struct {
	InitNoiseSigma float64 `json:"init_noise_sigma"`
	StepNumSteps   int     `json:"step_num_steps"`
	StepSigmaIndex int     `json:"step_sigma_index"`
}

func fixtureScheduler(t *testing.T) *Scheduler {
	t.Helper()
	sch, err := LoadScheduler(fixture.Path("pipeline", "scheduler", "scheduler_config.json"))
	require.NoError(t, err)
	return sch
}

func loadSchedulerCase(t *testing.T, s *torch.Scope, dev torch.Device) (map[string]*torch.Tensor, schedulerCase) {
	t.Helper()
	ts, err := torch.LoadFile(s, fixture.Path("io", "scheduler.safetensors"), dev)
	require.NoError(t, err)
	var c schedulerCase
	require.NoError(t, fixture.JSON("scheduler", &c))
	return ts, c
}

// maxRelErr is the largest |got − want|/|want| (|got − want| where want is 0).
func maxRelErr(got, want []float32) float64 {
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if want[i] != 0 {
			d /= math.Abs(float64(want[i]))
		}
		worst = math.Max(worst, d)
	}
	return worst
}

func TestParitySchedulerSigmas(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	ref, c := loadSchedulerCase(t, s, torch.CPU)
	var counts []int
	for k := range ref {
		if rest, ok := strings.CutPrefix(k, "sigmas."); ok {
			n, err := strconv.Atoi(rest)
			require.NoError(t, err, "key %q", k)
			counts = append(counts, n)
		}
	}
	slices.Sort(counts)
	require.NotEmpty(t, counts, "io/scheduler.safetensors holds no sigmas.N")

	sch := fixtureScheduler(t)
	for _, n := range counts {
		require.NoError(t, sch.SetTimesteps(n))
		for _, name := range []string{"sigmas", "timesteps"} {
			key := name + "." + strconv.Itoa(n)
			require.Contains(t, ref, key)
			want, err := ref[key].Float32s()
			require.NoError(t, err)
			got := sch.Sigmas()
			if name == "timesteps" {
				got = sch.Timesteps()
			}
			require.Len(t, got, len(want), key)
			e := maxRelErr(got, want)
			t.Logf("%s: %d values, max relative error %.3g", key, len(want), e)
			require.LessOrEqual(t, e, 1e-6, "%s: got %v, want %v", key, got, want)
		}
	}

	require.NoError(t, sch.SetTimesteps(c.StepNumSteps))
	e := math.Abs(sch.InitNoiseSigma()-c.InitNoiseSigma) / c.InitNoiseSigma
	t.Logf("init_noise_sigma %v (reference %v), relative error %.3g", sch.InitNoiseSigma(), c.InitNoiseSigma, e)
	require.LessOrEqual(t, e, 1e-7)
}

func TestParitySchedulerStep(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	ref, c := loadSchedulerCase(t, s, testDevice)
	sch := fixtureScheduler(t)
	require.NoError(t, sch.SetTimesteps(c.StepNumSteps))

	var scaled, prev *torch.Tensor
	var err error
	func() {
		defer torch.Recover(&err)
		scaled = sch.ScaleModelInput(s, ref["step_sample"], c.StepSigmaIndex)
		prev = sch.Step(s, ref["step_model_output"], ref["step_sample"], c.StepSigmaIndex)
	}()
	require.NoError(t, err)
	for _, r := range []struct {
		name      string
		got, want *torch.Tensor
	}{{"step_scaled_input", scaled, ref["step_scaled_input"]}, {"step_prev_sample", prev, ref["step_prev_sample"]}} {
		require.Equal(t, r.want.Shape(), r.got.Shape(), r.name)
		g, err := r.got.Float32s()
		require.NoError(t, err)
		w, err := r.want.Float32s()
		require.NoError(t, err)
		rel, err := fixture.RelL2(g, w)
		require.NoError(t, err)
		t.Logf("%s %v at σ index %d of %d steps on %s: relative L2 error %.3g, max relative error %.3g",
			r.name, r.got.Shape(), c.StepSigmaIndex, c.StepNumSteps, testDevice, rel, maxRelErr(g, w))
		require.LessOrEqual(t, rel, 1e-4, r.name)
	}
}
