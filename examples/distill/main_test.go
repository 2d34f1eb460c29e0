package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
