//go:build cuda

package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// On CUDA, with stage 2's whole step recorded as a graph, the validation
// run between replays leaves the training as it was: the adapters of a
// watched run are those of an unwatched one.
func TestWatchLeavesRecordedStepAlone(t *testing.T) {
	plain := smallExperiment(t)
	plain.Device, plain.Stage2Steps, plain.Stage1Record, plain.Stage2Record = "cuda", 4, true, true
	var log testWriter
	e := withSharedTeacher(t, &plain, &log)
	require.NoError(t, plain.seedPhase(t.Context(), e, 1, []string{"stage1", "osv"}))

	watched := forkAfterStage1(t, plain)
	watched.Watch = 1
	require.NoError(t, watched.seedPhase(t.Context(), e, 1, []string{"osv"}))
	run, ok, err := readRun(jobFile(watched.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, run.Watched, 4)
	base, ok, err := readRun(jobFile(plain.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	t.Logf("peak GPU memory: %.3f GiB watched, %.3f GiB not", run.Stages[0].PeakGiB, base.Stages[0].PeakGiB)

	// An unwatched copy of the same run says how far two runs of the
	// recorded step drift apart on their own.
	again := forkAfterStage1(t, plain)
	require.NoError(t, again.seedPhase(t.Context(), e, 1, []string{"osv"}))

	s := torch.NewScope()
	defer s.Close()
	load := func(o experiment) map[string]*torch.Tensor {
		m, err := torch.LoadFile(s, filepath.Join(jobAdapters(o.Work, 1, "osv"), "adapter_model.safetensors"), torch.CPU)
		require.NoError(t, err)
		return m
	}
	want := load(plain)
	watchedOff, againOff := relativeL2(t, want, load(watched)), relativeL2(t, want, load(again))
	t.Logf("the adapters after four steps, relative L2 from the plain run's: watched %.3g, unwatched copy %.3g", watchedOff, againOff)
	require.Less(t, watchedOff, 1e-5, "the adapters after four steps, relative L2")
}

// The validation -watch runs, on a student whose adapters autograd
// tracks, reads the same FD under withoutGrad with far less memory: no
// graph is kept for a backward pass that never comes.
func TestWithoutGradValidationMemory(t *testing.T) {
	u, err := unet.Load("teacher", unet.WithDevice("cuda"))
	require.NoError(t, err)
	defer u.Close()
	set, err := lora.Inject(u, lora.Config{R: 16, LoraAlpha: 16, TargetModules: lora.DefaultTargets}, 1)
	require.NoError(t, err)
	defer set.Close()
	var ts []*torch.Tensor
	for _, p := range set.Trainable() {
		require.NoError(t, p.T.SetRequiresGrad(true))
		ts = append(ts, p.T)
	}
	o := defaultExperiment()
	vs := (&env{}).validation(&o)
	dev := u.Device()
	measure := func(off bool) (fd, gib float64) {
		require.NoError(t, torch.EmptyCache())
		require.NoError(t, torch.ResetPeakMemory(dev))
		before := peak(dev)
		err := func() error {
			r, err := vs.run("validation", u, studentTTS())
			fd = r.FD
			return err
		}
		if off {
			require.NoError(t, withoutGrad(ts, err))
		} else {
			require.NoError(t, err())
		}
		return fd, peak(dev) - before
	}
	fdOn, on := measure(false)
	fdOff, off := measure(true)
	t.Logf("the validation's peak GPU memory: %.3f GiB tracked, %.3f GiB under withoutGrad; FD %.3f and %.3f", on, off, fdOn, fdOff)
	require.InDelta(t, fdOn, fdOff, 1e-3*fdOn, "the same validation, up to the kernels autograd picks")
	require.Less(t, off, on/2)
	for _, p := range set.Trainable() {
		require.True(t, p.T.RequiresGrad(), p.Name)
	}
}

// On CUDA, with stage 2's whole step recorded as a graph, the adapters'
// average reads the adapters each replay leaves: it is the average of
// the adapters of runs that stopped after each step, and the training is
// that of a run without it.
func TestAdapterAverageRecordedStep(t *testing.T) {
	plain := smallExperiment(t)
	plain.Device, plain.Stage2Steps, plain.Stage1Record, plain.Stage2Record = "cuda", 2, true, true
	var log testWriter
	e := withSharedTeacher(t, &plain, &log)
	require.NoError(t, plain.seedPhase(t.Context(), e, 1, []string{"stage1", "osv"}))
	one := forkAfterStage1(t, plain)
	one.Stage2Steps = 1
	require.NoError(t, one.seedPhase(t.Context(), e, 1, []string{"osv"}))
	avg := forkAfterStage1(t, plain)
	avg.AdapterEMA = 0.5
	require.NoError(t, avg.seedPhase(t.Context(), e, 1, []string{"osv"}))

	th0 := adapterValues(t, jobAdapters(plain.Work, 1, "stage1"))
	th1 := adapterValues(t, jobAdapters(one.Work, 1, "osv"))
	th2 := adapterValues(t, jobAdapters(plain.Work, 1, "osv"))
	last := adapterValues(t, jobAdapters(avg.Work, 1, "osv"))
	got := adapterValues(t, jobAverageAdapters(avg.Work, 1, "osv"))
	var worst, moved, drift float64
	for k, v2 := range th2 {
		for i := range v2 {
			want := 0.25*float64(th0[k][i]) + 0.25*float64(th1[k][i]) + 0.5*float64(v2[i])
			worst = max(worst, math.Abs(want-float64(got[k][i])))
			moved = max(moved, math.Abs(float64(v2[i]-th0[k][i])))
			drift = max(drift, math.Abs(float64(v2[i]-last[k][i])))
		}
	}
	t.Logf("the adapters moved by up to %.3g; the average is off by up to %.3g; the averaged run's adapters differ by up to %.3g", moved, worst, drift)
	require.Positive(t, moved)
	require.LessOrEqual(t, worst, 1e-2*moved)
	require.LessOrEqual(t, drift, 1e-2*moved)
}
