package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// The adapters' moving average is that of the adapters after each step,
// starting at stage 1's; it survives a resume, leaves the training as it
// was, and is evaluated as rows of its own.
func TestAdapterAverage(t *testing.T) {
	plain := smallExperiment(t)
	plain.Stage2Steps = 2
	var log testWriter
	e := withSharedTeacher(t, &plain, &log)
	require.NoError(t, plain.seedPhase(t.Context(), e, 1, []string{"stage1"}))
	require.NoError(t, plain.seedPhase(t.Context(), e, 1, []string{"osv"}))
	one := forkAfterStage1(t, plain)
	one.Stage2Steps = 1
	require.NoError(t, one.seedPhase(t.Context(), e, 1, []string{"osv"}))

	avg := forkAfterStage1(t, plain)
	avg.AdapterEMA = 0.5
	log = nil
	require.Error(t, avg.seedPhase(stopAfter(t, 1), e, 1, []string{"osv"}))
	stepHook = nil
	require.FileExists(t, progressBase(avg.Work, 1, "osv", 0)+".avg.safetensors")
	require.NoError(t, avg.seedPhase(t.Context(), e, 1, []string{"osv"}))
	require.Contains(t, string(log), "stage 2: resuming after step 1")
	require.NoFileExists(t, progressBase(avg.Work, 1, "osv", 0)+".avg.safetensors", "the progress goes with the job's result")

	// avg = 0.5·(0.5·θ0 + 0.5·θ1) + 0.5·θ2
	th0 := adapterValues(t, jobAdapters(plain.Work, 1, "stage1"))
	th1 := adapterValues(t, jobAdapters(one.Work, 1, "osv"))
	th2 := adapterValues(t, jobAdapters(plain.Work, 1, "osv"))
	got := adapterValues(t, jobAverageAdapters(avg.Work, 1, "osv"))
	require.Len(t, got, len(th2))
	// Stage 2's two steps move the adapters little, so the error is
	// measured against how far they moved.
	var worst, moved float64
	for k, v2 := range th2 {
		g := got[k]
		require.Len(t, g, len(v2), k)
		for i := range v2 {
			want := 0.25*float64(th0[k][i]) + 0.25*float64(th1[k][i]) + 0.5*float64(v2[i])
			worst = max(worst, math.Abs(want-float64(g[i])))
			moved = max(moved, math.Abs(float64(v2[i]-th0[k][i])))
		}
	}
	t.Logf("the adapters moved by up to %.3g; the average is off by up to %.3g", moved, worst)
	require.Positive(t, moved, "stage 2 left the adapters as stage 1 made them: the check would not see the average")
	require.LessOrEqual(t, worst, 1e-3*moved)
	sameTensors(t, jobAdapters(plain.Work, 1, "osv"), jobAdapters(avg.Work, 1, "osv"))

	base, ok, err := readRun(jobFile(plain.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	run, ok, err := readRun(jobFile(avg.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, run.Rows, 2*len(base.Rows), "each sampler again on the averaged adapters")
	for i, r := range base.Rows {
		require.Equal(t, r.FD, run.Rows[i].FD, "the average changed %s", r.Name)
		a := run.Rows[len(base.Rows)+i]
		require.Equal(t, averageLabel(labelOSV, 0.5)+strings.TrimPrefix(r.Name, labelOSV), a.Name)
		require.Positive(t, a.FD)
	}
	require.Equal(t, "OSV, the adapters' moving average (0.99)", averageLabel(labelOSV, 0.99))

	var out testWriter
	require.NoError(t, avg.tablePhase(&out, &log))
	report, err := os.ReadFile(filepath.Join(avg.Out, "RESULTS.md"))
	require.NoError(t, err)
	require.Contains(t, string(report), "**Averaged adapters**: stage 2 also keeps the moving average of the student's LoRA adapters (decay 0.5 a step")
	require.Contains(t, string(report), "| "+averageLabel(labelOSV, 0.5)+", 1 step + TTS | 2 | 1 |")
}

// adapterValues reads an adapter folder's float32 tensors by name.
func adapterValues(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	ts, err := torch.LoadFile(s, filepath.Join(dir, "adapter_model.safetensors"), torch.CPU)
	require.NoError(t, err, dir)
	out := map[string][]float32{}
	for k, v := range ts {
		f, err := v.Float32s()
		require.NoError(t, err, k)
		out[k] = f
	}
	require.NotEmpty(t, out, dir)
	return out
}
