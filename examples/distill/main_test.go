package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/unet"
)

// A short stage-2 run on synthetic videos with the fixture models: it
// caches, trains, checkpoints, resumes, logs, plots and exports.
func TestDistillRunsAndResumes(t *testing.T) {
	dir := t.TempDir()
	videos := filepath.Join(dir, "videos")
	require.NoError(t, os.MkdirAll(videos, 0o755))
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		var log bytes.Buffer
		err := run(context.Background(), []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"),
			"-data", videos, "-out", filepath.Join(dir, "out")}, &log)
		require.Error(t, err, "without ffmpeg there is no data")
		return
	}
	for i := range 3 {
		out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=96x64:rate=10:duration=%g", 1+0.2*float64(i)), "-pix_fmt", "yuv420p", "-y",
			filepath.Join(videos, fmt.Sprintf("clip%d.mp4", i))).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	require.NoError(t, os.WriteFile(filepath.Join(videos, "broken.mp4"), []byte("not a video"), 0o644))
	cfg := filepath.Join(dir, "train.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"lora_rank": 4, "grid_size": 8, "sigma_max": 20, "solver_steps": 2, "lr": 0.001, "seed": 1}`), 0o644))
	out := filepath.Join(dir, "out")
	args := func(steps string, extra ...string) []string {
		return append([]string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-data", videos,
			"-out", out, "-config", cfg, "-stage", "2", "-width", "64", "-height", "64", "-frames", "3", "-fps", "5",
			"-save-every", "1", "-steps", steps}, extra...)
	}
	var log bytes.Buffer
	require.NoError(t, run(context.Background(), args("2"), &log), log.String())
	require.Contains(t, log.String(), "cached 3 clips")
	require.Contains(t, log.String(), "skipped")
	require.Contains(t, log.String(), "step 2/2")

	log.Reset()
	require.NoError(t, run(context.Background(), args("3", "-resume"), &log), log.String())
	require.Contains(t, log.String(), "resumed from")
	require.Contains(t, log.String(), "step 3/3")
	steps, series, err := osv.ReadMetrics(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, []float64{1, 2, 3}, steps)
	require.Len(t, series["loss_dist"], 3)
	svg, err := os.ReadFile(filepath.Join(out, "loss.svg"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(svg), "<svg"))
	m, err := unet.Load(filepath.Join(out, "export", "unet"))
	require.NoError(t, err)
	m.Close()
	_, err = os.Stat(filepath.Join(out, "export", "lora", "adapter_model.safetensors"))
	require.NoError(t, err)

	// An interrupted run saves its checkpoint and stops cleanly.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	log.Reset()
	require.NoError(t, run(ctx, args("5", "-resume"), &log), log.String())
	require.Contains(t, log.String(), "interrupted: saved")
}

func TestDistillRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	base := []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-out", filepath.Join(dir, "o")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-data", dir}, "-teacher, -dinov2, -data and -out are required"},
		{append(base, "-data", filepath.Join(dir, "none")), "none"},
		{append(base, "-data", dir), "no video files"},
		{append(base, "-data", dir, "-stage", "3"), "-stage 3"},
		{append(base, "-data", dir, "-steps", "0"), "-steps 0"},
		{append(base, "-data", dir, "-resume", "-init", "x"), "exclude each other"},
		{append(base, "-data", dir, "-config", filepath.Join(dir, "missing.json")), "missing.json"},
	} {
		var log bytes.Buffer
		err := run(context.Background(), c.args, &log)
		require.Error(t, err, strings.Join(c.args, " "))
		require.Contains(t, err.Error(), c.want)
	}
}

// TestMain lets the test binary stand in for the command in a child
// process (for the SIGKILL test).
func TestMain(m *testing.M) {
	if os.Getenv("DISTILL_CHILD") == "1" {
		if err := run(context.Background(), strings.Split(os.Getenv("DISTILL_ARGS"), "\x1f"), os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "distill:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A run killed with SIGKILL mid-training leaves a checkpoint that a new
// run resumes from; a corrupt checkpoint is a clear error.
func TestKilledRunResumes(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return // TestDistillRunsAndResumes checks the behaviour without ffmpeg
	}
	dir := t.TempDir()
	videos := filepath.Join(dir, "videos")
	require.NoError(t, os.MkdirAll(videos, 0o755))
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1.2",
		"-pix_fmt", "yuv420p", "-y", filepath.Join(videos, "a.mp4")).CombinedOutput()
	require.NoError(t, err, string(out))
	cfg := filepath.Join(dir, "train.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"lora_rank": 4, "grid_size": 8, "sigma_max": 20, "solver_steps": 2}`), 0o644))
	outDir := filepath.Join(dir, "out")
	args := []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-data", videos, "-out", outDir,
		"-config", cfg, "-width", "64", "-height", "64", "-frames", "3", "-fps", "5", "-save-every", "1"}

	child := exec.Command(os.Args[0], "-test.run=TestMain")
	child.Env = append(os.Environ(), "DISTILL_CHILD=1", "DISTILL_ARGS="+strings.Join(append(args, "-steps", "100000"), "\x1f"))
	childLog := &lockedBuffer{}
	child.Stderr = childLog
	require.NoError(t, child.Start())
	ckpt := filepath.Join(outDir, "checkpoint.safetensors")
	// Kill it once it has saved a couple of checkpoints, mid-training.
	for i := 0; ; i++ {
		if strings.Count(childLog.String(), "step ") >= 3 {
			break
		}
		require.Less(t, i, 1200, "the child made no progress: %s", childLog.String())
		exec.Command("sleep", "0.05").Run()
	}
	require.NoError(t, child.Process.Kill())
	child.Wait()

	var log bytes.Buffer
	require.NoError(t, run(context.Background(), append(args, "-resume", "-steps", "4"), &log), log.String())
	require.Contains(t, log.String(), "resumed from")
	require.Contains(t, log.String(), "step 4/4")

	require.NoError(t, os.WriteFile(ckpt, []byte("garbage"), 0o644))
	log.Reset()
	err = run(context.Background(), append(args, "-resume", "-steps", "6"), &log)
	require.ErrorContains(t, err, "checkpoint.safetensors")
}

// lockedBuffer is a bytes.Buffer safe to write from one goroutine while
// another reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
