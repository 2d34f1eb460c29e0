package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
)

// A short run with FVD on held-out videos every step, with the FVD
// fixture's detector: the metrics log gets one FVD record per step.
func TestDistillFVD(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (the Makefile installs it)")
	}
	dir := t.TempDir()
	videos, held := filepath.Join(dir, "videos"), filepath.Join(dir, "held")
	for _, d := range []string{videos, held} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for i := range 3 {
		for _, d := range []string{videos, held} {
			src := "testsrc2"
			if d == held {
				src = "testsrc"
			}
			out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
				fmt.Sprintf("%s=size=96x64:rate=10:duration=%g", src, 1+0.2*float64(i)), "-pix_fmt", "yuv420p", "-y",
				filepath.Join(d, fmt.Sprintf("clip%d.mp4", i))).CombinedOutput()
			require.NoError(t, err, string(out))
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(held, "broken.mp4"), []byte("not a video"), 0o644))
	cfg := filepath.Join(dir, "train.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"lora_rank": 4, "grid_size": 8, "sigma_max": 20, "solver_steps": 2, "lr": 0.001, "seed": 1}`), 0o644))
	out := filepath.Join(dir, "out")
	detector := filepath.Join("..", "..", "testdata", "fvd", "detector.pt")
	args := []string{"-teacher", fixture.Path("pipeline"), "-dinov2", fixture.Path("dinov2"), "-data", videos,
		"-out", out, "-config", cfg, "-stage", "2", "-width", "64", "-height", "64", "-frames", "3", "-fps", "5",
		"-save-every", "2", "-steps", "2", "-fvd-detector", detector, "-fvd-data", held, "-fvd-every", "1"}
	var log bytes.Buffer
	require.NoError(t, run(context.Background(), args, &log), log.String())
	require.Contains(t, log.String(), "fvd: 3 held-out clips")
	require.Contains(t, log.String(), "broken.mp4")

	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var recs []fvdRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		if _, ok := m["fvd"]; ok {
			var r fvdRecord
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
			recs = append(recs, r)
		}
	}
	require.Len(t, recs, 2, log.String())
	for i, r := range recs {
		require.Equal(t, int64(i+1), r.Step)
		require.Equal(t, 3, r.Clips)
		require.False(t, math.IsNaN(r.FVD) || math.IsInf(r.FVD, 0))
		require.Greater(t, r.FVD, 0.0)
	}
	t.Logf("FVD at steps 1 and 2: %.4g, %.4g", recs[0].FVD, recs[1].FVD)

	// The flags go together.
	err = run(context.Background(), append(args[:len(args)-6:len(args)-6], "-fvd-data", held), &log)
	require.ErrorContains(t, err, "go together")
}
