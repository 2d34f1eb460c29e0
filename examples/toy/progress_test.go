package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// A stage stopped after some steps resumes in the next command where it
// stopped: on the CPU its checkpoint and its rows are those of a run that
// never stopped, its recorded steps are the whole stage's, and its
// progress files go once the job's result is written.
func TestStageResumes(t *testing.T) {
	straight := smallExperiment(t)
	straight.Stage1Steps = 4
	var log testWriter
	e := withSharedTeacher(t, &straight, &log)
	require.NoError(t, straight.seedPhase(t.Context(), e, 1, []string{"stage1"}))

	stopped := straight
	stopped.Work = t.TempDir()
	require.NoError(t, copyFolder(straight.teacherDir(), stopped.teacherDir()))
	b, err := os.ReadFile(filepath.Join(straight.Work, "teacher.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(stopped.Work, "teacher.json"), b, 0o644))

	err = stopped.seedPhase(stopAfter(t, 2), e, 1, []string{"stage1"})
	firstEnded := time.Now() // the job's run is dated by this first command
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "stopped after step 2")
	base := progressBase(stopped.Work, 1, "stage1", 0)
	require.FileExists(t, base+".json")
	require.NoFileExists(t, jobFile(stopped.Work, 1, "stage1"))

	stepHook = nil
	log = nil
	require.NoError(t, stopped.seedPhase(t.Context(), e, 1, []string{"stage1"}))
	require.Contains(t, string(log), "stage 1: resuming after step 2")
	for _, suffix := range []string{".json", ".safetensors", ".gen.safetensors"} {
		require.NoFileExists(t, base+suffix)
	}

	a, ok, err := readRun(jobFile(straight.Work, 1, "stage1"))
	require.NoError(t, err)
	require.True(t, ok)
	c, ok, err := readRun(jobFile(stopped.Work, 1, "stage1"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 4, c.Stages[0].Steps)
	require.True(t, c.Started.Before(firstEnded), "the job started %v, with its first command, which ended %v", c.Started, firstEnded)
	require.Len(t, c.Rows, len(a.Rows))
	for i := range a.Rows {
		require.Equal(t, a.Rows[i].FD, c.Rows[i].FD, a.Rows[i].Name)
	}

	s := torch.NewScope()
	defer s.Close()
	want, err := torch.LoadFile(s, filepath.Join(seedDir(straight.Work, 1), "stage1.safetensors"), torch.CPU)
	require.NoError(t, err)
	got, err := torch.LoadFile(s, filepath.Join(seedDir(stopped.Work, 1), "stage1.safetensors"), torch.CPU)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	checked := 0
	for k, w := range want {
		if w.DType() != torch.Float32 {
			continue
		}
		wv, err := w.Float32s()
		require.NoError(t, err)
		gv, err := got[k].Float32s()
		require.NoError(t, err)
		require.True(t, slices.Equal(wv, gv), "%s differs after the resume", k)
		checked++
	}
	require.Greater(t, checked, 10)
}

// stopAfter is a context that training cancels after the given step, as
// an interrupt would (through stepHook, which a test clears before it
// resumes, and which is cleared when the test ends).
func stopAfter(t *testing.T, step int) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	stepHook = func(s int) {
		if s == step {
			cancel()
		}
	}
	t.Cleanup(func() { stepHook = nil })
	return ctx
}

// Progress files that disagree are an error naming them, not a silent
// restart.
func TestProgressMismatch(t *testing.T) {
	o := smallExperiment(t)
	o.Stage1Steps = 3
	var log testWriter
	e := withSharedTeacher(t, &o, &log)
	require.Error(t, o.seedPhase(stopAfter(t, 2), e, 1, []string{"stage1"}))
	stepHook = nil
	base := progressBase(o.Work, 1, "stage1", 0)
	b, err := os.ReadFile(base + ".json")
	require.NoError(t, err)
	var p progress
	require.NoError(t, json.Unmarshal(b, &p))
	require.Equal(t, 2, p.Steps)
	p.Steps = 1
	b, err = json.Marshal(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(base+".json", b, 0o644))
	err = o.seedPhase(t.Context(), e, 1, []string{"stage1"})
	require.ErrorContains(t, err, "stage1.part1.safetensors holds step 2")
	require.ErrorContains(t, err, "says 1")
}

// A run overlaps another when it starts before the other's stages end;
// one that starts as another ends does not.
func TestSideBySide(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	run := func(start, wall time.Duration) runFile {
		return runFile{Started: t0.Add(start), Stages: []stageLine{{Wall: wall / 2}, {Wall: wall / 2}}}
	}
	require.Equal(t, 0, sideBySide(nil))
	require.Equal(t, 0, sideBySide([]runFile{run(0, time.Minute), run(time.Minute, time.Minute)}))
	require.Equal(t, 2, sideBySide([]runFile{run(0, time.Minute), run(59*time.Second, time.Minute), run(3*time.Minute, time.Minute)}))
	require.Equal(t, 3, sideBySide([]runFile{run(0, 10*time.Minute), run(time.Minute, time.Second), run(5*time.Minute, time.Second)}))
}
