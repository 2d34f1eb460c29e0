package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// Without ffmpeg the videos cannot be decoded: the run stops with
// data.ErrNoFFmpeg, which says how to install it.
func TestDistillWithoutFFmpeg(t *testing.T) {
	dir := t.TempDir()
	videos := filepath.Join(dir, "videos")
	require.NoError(t, os.MkdirAll(videos, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(videos, "clip.mp4"), []byte("a video"), 0o644))
	t.Setenv("PATH", t.TempDir())
	var log bytes.Buffer
	err := run(context.Background(), []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"),
		"-data", videos, "-out", filepath.Join(dir, "out")}, &log)
	require.ErrorIs(t, err, data.ErrNoFFmpeg)
	require.ErrorContains(t, err, "apt-get install ffmpeg")
}

// A short stage-2 run on synthetic videos with the fixture models: it
// caches, trains, checkpoints, resumes, logs, plots and exports.
func TestDistillRunsAndResumes(t *testing.T) {
	dir := t.TempDir()
	videos := filepath.Join(dir, "videos")
	require.NoError(t, os.MkdirAll(videos, 0o755))
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not on PATH (TestDistillWithoutFFmpeg checks the error then); make test installs ffmpeg and runs this test")
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
		t.Skip("ffmpeg is not on PATH (TestDistillWithoutFFmpeg checks the error then); make test installs ffmpeg and runs this test")
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

// testVideos writes three short synthetic videos and a small training
// config; ok is false without ffmpeg.
func testVideos(t *testing.T, dir string) (videos, cfg string, ok bool) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return "", "", false
	}
	videos = filepath.Join(dir, "videos")
	require.NoError(t, os.MkdirAll(videos, 0o755))
	for i := range 3 {
		out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=96x64:rate=10:duration=%g", 1+0.2*float64(i)), "-pix_fmt", "yuv420p", "-y",
			filepath.Join(videos, fmt.Sprintf("clip%d.mp4", i))).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	cfg = filepath.Join(dir, "train.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"lora_rank": 4, "grid_size": 8, "sigma_max": 20, "solver_steps": 2, "lr": 0.001, "seed": 1}`), 0o644))
	return videos, cfg, true
}

// useTestRanks makes -nproc start ranks as this test binary (TestMain's
// child mode); fail, when set, makes the rank of that start order fail at
// once with a bad flag.
func useTestRanks(t *testing.T, fail int) {
	old := rankCommand
	var mu sync.Mutex
	n := 0
	rankCommand = func(args []string) (*exec.Cmd, error) {
		mu.Lock()
		defer mu.Unlock()
		if n == fail {
			args = append(slices.Clone(args), "-stage", "9")
		}
		n++
		cmd := exec.Command(os.Args[0], "-test.run=TestMain")
		cmd.Env = append(os.Environ(), "DISTILL_CHILD=1", "DISTILL_ARGS="+strings.Join(args, "\x1f"))
		return cmd, nil
	}
	t.Cleanup(func() { rankCommand = old })
}

// worldSetup prepares a data-parallel run on the CPU (Gloo) with test
// videos and test ranks (see useTestRanks), or skips without Gloo or ffmpeg.
func worldSetup(t *testing.T, fail int) (dir, videos, cfg string) {
	if !torch.DistributedBuilt(torch.Gloo) {
		t.Skip("this build has no c10d/Gloo")
	}
	dir = t.TempDir()
	videos, cfg, ok := testVideos(t, dir)
	if !ok {
		t.Skip("ffmpeg is not on PATH, and these tests need it for their videos; make test installs ffmpeg and runs them")
	}
	useTestRanks(t, fail)
	return dir, videos, cfg
}

// -nproc 2 trains as two Gloo ranks: rank 0 alone logs, checkpoints and
// records the world size; the run resumes with the same world size and
// refuses another.
func TestDistillDataParallel(t *testing.T) {
	dir, videos, cfg := worldSetup(t, -1)
	out := filepath.Join(dir, "out")
	args := func(steps string, extra ...string) []string {
		return append([]string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-data", videos,
			"-out", out, "-config", cfg, "-stage", "2", "-width", "64", "-height", "64", "-frames", "3", "-fps", "5",
			"-save-every", "1", "-dist-timeout", "60s", "-steps", steps}, extra...)
	}
	log := &lockedBuffer{}
	require.NoError(t, run(context.Background(), args("2", "-nproc", "2"), log), log.String())
	require.Contains(t, log.String(), "data-parallel: 2 ranks through gloo")
	require.Equal(t, 1, strings.Count(log.String(), "step 2/2"), "one progress line per step, from rank 0:\n%s", log.String())
	steps, _, err := osv.ReadMetrics(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, []float64{1, 2}, steps)
	w, err := os.ReadFile(filepath.Join(out, "world.json"))
	require.NoError(t, err)
	require.JSONEq(t, `{"world_size": 2}`, string(w))

	log = &lockedBuffer{}
	require.NoError(t, run(context.Background(), args("3", "-nproc", "2", "-resume"), log), log.String())
	require.Contains(t, log.String(), "resumed from")
	require.Contains(t, log.String(), "step 3/3")
	steps, _, err = osv.ReadMetrics(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, []float64{1, 2, 3}, steps)

	err = run(context.Background(), args("4", "-resume"), &bytes.Buffer{})
	require.ErrorContains(t, err, "written by a world of 2 processes, this one has 1")
}

// A rank that fails ends the whole run with an error naming it, without
// waiting for the others' timeout.
func TestDistillRankFailure(t *testing.T) {
	dir, videos, cfg := worldSetup(t, 1)
	log := &lockedBuffer{}
	start := time.Now()
	err := run(context.Background(), []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"),
		"-data", videos, "-out", filepath.Join(dir, "out"), "-config", cfg, "-width", "64", "-height", "64",
		"-frames", "3", "-fps", "5", "-steps", "2", "-nproc", "2"}, log)
	require.ErrorContains(t, err, "rank 1 of 2")
	require.Contains(t, log.String(), "-stage 9", "the failing rank's own message")
	require.Less(t, time.Since(start), 2*time.Minute)
}
