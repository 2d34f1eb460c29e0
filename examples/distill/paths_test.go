package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/torch"
)

// An OpenVid-style CSV whose videos live elsewhere (-video-dir) fills the
// cache with the clips it lists, in its order; a second run given -cache
// reuses that cache whatever -data says; -init starts stage 2 from a
// stage-1 checkpoint (the step counts from 1 again, and the student is the
// stage-1 one: its first step differs from a fresh start's), and refuses a
// checkpoint of the later stage for stage 1.
func TestDistillCSVCacheAndInit(t *testing.T) {
	dir := t.TempDir()
	videos, cfg, ok := testVideos(t, dir)
	if !ok {
		t.Skip("ffmpeg is not on PATH, and this test needs it for its videos; make test installs ffmpeg and runs it")
	}
	lists := filepath.Join(dir, "lists")
	require.NoError(t, os.MkdirAll(lists, 0o755))
	csvPath := filepath.Join(lists, "openvid.csv")
	require.NoError(t, os.WriteFile(csvPath, []byte("video,caption,aesthetic score\nclip2.mp4,\"a pattern, moving\",5.1\nclip0.mp4,static,4.2\n"), 0o644))
	cacheDir := filepath.Join(dir, "cache")
	args := func(out, stage, steps string, extra ...string) []string {
		return append([]string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-out", out,
			"-config", cfg, "-stage", stage, "-width", "64", "-height", "64", "-frames", "3", "-fps", "5",
			"-save-every", "1", "-steps", steps, "-cache", cacheDir}, extra...)
	}
	listed := []string{filepath.Join(videos, "clip2.mp4"), filepath.Join(videos, "clip0.mp4")}
	cached := func() []string {
		c, err := data.OpenCache(cacheDir)
		require.NoError(t, err)
		defer c.Close()
		s := torch.NewScope()
		defer s.Close()
		var paths []string
		for i := range c.Len() {
			e, err := c.Entry(s, i, torch.CPU)
			require.NoError(t, err)
			paths = append(paths, e.Path)
		}
		return paths
	}

	// Stage 1 on the CSV, its videos in -video-dir.
	stage1 := filepath.Join(dir, "stage1")
	var log bytes.Buffer
	require.NoError(t, run(context.Background(), args(stage1, "1", "2", "-data", csvPath, "-video-dir", videos), &log), log.String())
	require.Contains(t, log.String(), "cached 2 clips in "+cacheDir)
	require.Equal(t, listed, cached())
	shards, err := filepath.Glob(filepath.Join(cacheDir, "*.safetensors"))
	require.NoError(t, err)
	require.NotEmpty(t, shards)
	stamp := map[string]time.Time{}
	for _, p := range shards {
		st, err := os.Stat(p)
		require.NoError(t, err)
		stamp[p] = st.ModTime()
	}
	// Without -video-dir the CSV's names are looked up beside it: no video
	// is there, so every clip is skipped.
	err = run(context.Background(), append(args(filepath.Join(dir, "nowhere"), "1", "1", "-data", csvPath),
		"-cache", filepath.Join(dir, "cache-nowhere")), &bytes.Buffer{})
	require.ErrorContains(t, err, "no usable video in "+csvPath)
	require.NoFileExists(t, filepath.Join(dir, "cache-nowhere", "shard_00000.safetensors"))

	// Stage 2 from the stage-1 checkpoint, on the folder of three videos:
	// the cache of two is reused as it is.
	initRun := filepath.Join(dir, "init")
	log.Reset()
	require.NoError(t, run(context.Background(), args(initRun, "2", "1", "-data", videos,
		"-init", filepath.Join(stage1, "checkpoint.safetensors")), &log), log.String())
	require.NotContains(t, log.String(), "cached", "the cache is reused")
	require.Contains(t, log.String(), "step 1/1")
	require.Equal(t, listed, cached())
	for p, m := range stamp {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, m, st.ModTime(), "%s rewritten", p)
	}
	steps, withInit, err := osv.ReadMetrics(filepath.Join(initRun, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, []float64{1}, steps, "stage 2 counts from its first step")

	// The same stage-2 step from a fresh start differs.
	fresh := filepath.Join(dir, "fresh")
	log.Reset()
	require.NoError(t, run(context.Background(), args(fresh, "2", "1", "-data", videos), &log), log.String())
	_, without, err := osv.ReadMetrics(filepath.Join(fresh, "metrics.jsonl"))
	require.NoError(t, err)
	t.Logf("stage 2's first loss_dist: %.6g from the stage-1 checkpoint, %.6g from a fresh start", withInit["loss_dist"][0], without["loss_dist"][0])
	require.NotEqual(t, without["loss_dist"][0], withInit["loss_dist"][0], "-init changed nothing")

	// A stage-2 checkpoint cannot start stage 1; a missing one is named.
	err = run(context.Background(), args(filepath.Join(dir, "back"), "1", "1", "-data", videos,
		"-init", filepath.Join(initRun, "checkpoint.safetensors")), &bytes.Buffer{})
	require.ErrorContains(t, err, "is from stage 2; this trainer runs stage 1")
	missing := filepath.Join(dir, "missing.safetensors")
	err = run(context.Background(), args(filepath.Join(dir, "missing"), "2", "1", "-data", videos, "-init", missing), &bytes.Buffer{})
	require.ErrorContains(t, err, missing)
}

// -backend takes nccl or gloo; NCCL in a build without it fails the ranks
// with the reason, not a hang.
func TestDistillBackend(t *testing.T) {
	dir := t.TempDir()
	base := []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-out", filepath.Join(dir, "o"), "-data", dir}
	err := run(context.Background(), append(base, "-backend", "mpi"), &bytes.Buffer{})
	require.ErrorContains(t, err, `-backend "mpi": want nccl or gloo`)
	if torch.DistributedBuilt(torch.NCCL) {
		t.Skip("this build has NCCL: the ranks' NCCL group runs on the GPU (TestDistNCCLWorldOne, go test -tags cuda ./torch)")
	}
	dir, videos, cfg := worldSetup(t, -1)
	log := &lockedBuffer{}
	start := time.Now()
	err = run(context.Background(), []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"),
		"-data", videos, "-out", filepath.Join(dir, "out"), "-config", cfg, "-width", "64", "-height", "64",
		"-frames", "3", "-fps", "5", "-steps", "1", "-nproc", "2", "-backend", "nccl", "-dist-timeout", "60s"}, log)
	require.Error(t, err)
	require.Regexp(t, `rank [01] of 2`, err.Error(), "the first rank to fail is named")
	require.Contains(t, log.String(), "no c10d nccl backend", "the rank's own message")
	require.Less(t, time.Since(start), 2*time.Minute)
}
