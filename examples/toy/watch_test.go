package main

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// Watching stage 2 leaves its training as it was, survives a resume, and
// keeps the adapters of the step with the lowest validation FD: those of
// a run that stopped at that step, and evaluated as rows of their own.
func TestWatchKeepsTheBest(t *testing.T) {
	plain := smallExperiment(t)
	plain.Stage2Steps = 4
	var log testWriter
	e := withSharedTeacher(t, &plain, &log)
	require.NoError(t, plain.seedPhase(t.Context(), e, 1, []string{"stage1"}))
	require.NoError(t, plain.seedPhase(t.Context(), e, 1, []string{"osv"}))

	fork := func(steps, watch int) experiment {
		o := forkAfterStage1(t, plain)
		o.Stage2Steps, o.Watch = steps, watch
		return o
	}
	// The readings fall with each step here; one made lower than the
	// last puts the lowest inside the run.
	watched := fork(4, 1)
	watchHook = func(step int, fd float64) float64 {
		if step == 2 {
			return fd / 2
		}
		return fd
	}
	t.Cleanup(func() { watchHook = nil })
	log = nil
	require.Error(t, watched.seedPhase(stopAfter(t, 2), e, 1, []string{"osv"}))
	stepHook = nil
	pb, err := os.ReadFile(progressBase(watched.Work, 1, "osv", 0) + ".json")
	require.NoError(t, err)
	var p progress
	require.NoError(t, json.Unmarshal(pb, &p))
	require.Equal(t, 2, p.Best, "the stopped command's progress names the best step")
	require.Len(t, p.Watched, 2)
	require.DirExists(t, jobBestAdapters(watched.Work, 1, "osv"))
	require.NoError(t, watched.seedPhase(t.Context(), e, 1, []string{"osv"}))
	require.Contains(t, string(log), "stage 2: resuming after step 2")
	require.Contains(t, string(log), "stage 2 step 4: validation FD")

	run, ok, err := readRun(jobFile(watched.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, run.Watched, 4)
	for i, w := range run.Watched {
		require.Equal(t, i+1, w.Step)
		require.Positive(t, w.FD)
	}
	best, bestFD := bestOf(run.Watched)
	t.Logf("validation readings %v, lowest at step %d", run.Watched, best)
	require.Equal(t, 2, best)
	require.Equal(t, best, run.Best)
	for _, w := range run.Watched {
		require.GreaterOrEqual(t, w.FD, bestFD)
	}
	base, ok, err := readRun(jobFile(plain.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, base.Watched)
	require.Len(t, run.Rows, 2*len(base.Rows), "each sampler again on the lowest checkpoint")
	for i, r := range base.Rows {
		require.Equal(t, r.Name, run.Rows[i].Name)
		require.Equal(t, r.FD, run.Rows[i].FD, "watching changed %s", r.Name)
		b := run.Rows[len(base.Rows)+i]
		require.True(t, strings.HasPrefix(b.Name, bestLabel(labelOSV)+", "), b.Name)
		require.Equal(t, strings.TrimPrefix(r.Name, labelOSV), strings.TrimPrefix(b.Name, bestLabel(labelOSV)))
	}
	sameTensors(t, jobAdapters(plain.Work, 1, "osv"), jobAdapters(watched.Work, 1, "osv"))

	// The lowest checkpoint is the student of a run that ended there.
	short := fork(best, 0)
	require.NoError(t, short.seedPhase(t.Context(), e, 1, []string{"osv"}))
	sameTensors(t, jobAdapters(short.Work, 1, "osv"), jobBestAdapters(watched.Work, 1, "osv"))
	s, ok, err := readRun(jobFile(short.Work, 1, "osv"))
	require.NoError(t, err)
	require.True(t, ok)
	for i, r := range s.Rows {
		require.InDelta(t, r.FD, run.Rows[len(base.Rows)+i].FD, 1e-3*r.FD, "the merged student differs from the adapted one in %s", r.Name)
	}
}

// forkAfterStage1 is o with work and output folders of their own, holding
// copies of o's teacher and of seed 1's stage 1, to run its later jobs
// again from the same start.
func forkAfterStage1(t *testing.T, o experiment) experiment {
	t.Helper()
	c := o
	c.Work, c.Out = t.TempDir(), t.TempDir()
	require.NoError(t, copyFolder(o.teacherDir(), c.teacherDir()))
	require.NoError(t, os.MkdirAll(seedDir(c.Work, 1), 0o755))
	for _, f := range []string{"teacher.json", "seed-1/stage1.json", "seed-1/stage1.safetensors"} {
		b, err := os.ReadFile(filepath.Join(o.Work, f))
		require.NoError(t, err, f)
		require.NoError(t, os.WriteFile(filepath.Join(c.Work, f), b, 0o644))
	}
	return c
}

// sameTensors requires two adapter folders to hold the same float tensors,
// bit for bit.
func sameTensors(t *testing.T, a, b string) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	load := func(dir string) map[string]*torch.Tensor {
		files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		all := map[string]*torch.Tensor{}
		for _, f := range files {
			m, err := torch.LoadFile(s, f, torch.CPU)
			require.NoError(t, err, f)
			for k, v := range m {
				all[filepath.Base(f)+":"+k] = v
			}
		}
		return all
	}
	want, got := load(a), load(b)
	require.Len(t, got, len(want))
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, "%s lacks %s", b, k)
		if w.DType() != torch.Float32 {
			continue
		}
		wv, err := w.Float32s()
		require.NoError(t, err)
		gv, err := g.Float32s()
		require.NoError(t, err)
		require.True(t, slices.Equal(wv, gv), "%s differs between %s and %s", k, a, b)
	}
}

// What runs inside withoutGrad records nothing for autograd, and the
// parameters autograd tracked before track it again after, even when the
// run fails; one it did not track stays untracked.
func TestWithoutGrad(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	mk := func(on bool) *torch.Tensor {
		x, err := torch.Zeros(s, []int64{3}, torch.Float32, torch.CPU)
		require.NoError(t, err)
		require.NoError(t, x.SetRequiresGrad(on))
		return x
	}
	a, b := mk(true), mk(false)
	ts := []*torch.Tensor{a, b}
	require.True(t, s.MulScalar(a, 2).RequiresGrad())
	var inside bool
	require.NoError(t, withoutGrad(ts, func() error {
		inside = s.MulScalar(a, 2).RequiresGrad() || a.RequiresGrad()
		return nil
	}))
	require.False(t, inside)
	require.True(t, a.RequiresGrad())
	require.False(t, b.RequiresGrad())
	require.True(t, s.MulScalar(a, 2).RequiresGrad())
	require.ErrorContains(t, withoutGrad(ts, func() error { return errors.New("the run failed") }), "the run failed")
	require.True(t, a.RequiresGrad())
}

// relativeL2 is ‖got − want‖ / ‖want‖ over every tensor of want, which
// got must hold with as many values.
func relativeL2(t *testing.T, want, got map[string]*torch.Tensor) float64 {
	t.Helper()
	require.Len(t, got, len(want))
	var num, den float64
	for k, w := range want {
		g, ok := got[k]
		require.True(t, ok, k)
		wv, err := w.Float64s()
		require.NoError(t, err, k)
		gv, err := g.Float64s()
		require.NoError(t, err, k)
		require.Len(t, gv, len(wv), k)
		for i := range wv {
			num += (wv[i] - gv[i]) * (wv[i] - gv[i])
			den += wv[i] * wv[i]
		}
	}
	require.Positive(t, den)
	return math.Sqrt(num / den)
}
