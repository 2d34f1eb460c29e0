package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// peerCase is one case as the peer script reports it.
type peerCase struct {
	Name    string    `json:"name"`
	RunsMS  []float64 `json:"runs_ms"`
	PeakGiB float64   `json:"peak_gib"`
	Error   string    `json:"error"`
	Note    string    `json:"note"`
}

// peerOf names the peer case a case of ours is compared with: the same
// name, or for the student's one-step consistency path diffusers' one-step
// pipeline, which makes the same single UNet call.
func peerOf(name string) string {
	if strings.HasPrefix(name, "pipeline student 1 step consistency") {
		return "pipeline 1 step"
	}
	return name
}

// peerScript finds peer/svd_peer.py: beside the working folder's
// examples/bench, or beside this source file.
func peerScript(flagged string) (string, error) {
	if flagged != "" {
		return flagged, nil
	}
	cands := []string{filepath.Join("examples", "bench", "peer", "svd_peer.py")}
	if _, file, _, ok := runtime.Caller(0); ok {
		cands = append(cands, filepath.Join(filepath.Dir(file), "peer", "svd_peer.py"))
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("peer script not found (looked at %s)", strings.Join(cands, ", "))
}

// peerAvailable reports whether python3 can import torch and diffusers,
// with the reason when it cannot.
func peerAvailable(python string) (bool, string) {
	out, err := exec.Command(python, "-c", "import torch, diffusers, transformers; print(torch.cuda.is_available())").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return false, fmt.Sprintf("%s cannot import torch, diffusers and transformers (%v: %s)", python, err, lines[len(lines)-1])
	}
	if strings.TrimSpace(string(out)) != "True" {
		return false, python + "'s torch sees no CUDA device"
	}
	return true, ""
}

// runPeer times diffusers on the same cases, sizes, dtype and run counts in
// a child process (after ours, with our allocator's cache released), and
// returns its cases by name.
func (b *bench) runPeer(python, script string, groups []string, batches string, compile bool) (map[string]peerCase, error) {
	dir, err := os.MkdirTemp("", "osv-bench-peer")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, cfg := range map[string]any{
		"unet.json": unet.DefaultConfig(), "vae.json": vae.DefaultConfig(), "clip.json": clip.DefaultConfig(),
		"scheduler.json": solver.DefaultSchedulerConfig(),
	} {
		raw, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			return nil, err
		}
	}
	var cases []string
	for _, g := range groups {
		if slices.Contains([]string{"unet", "vae", "clip", "pipeline"}, g) {
			cases = append(cases, g)
		}
	}
	if len(cases) == 0 {
		return nil, nil
	}
	args := []string{script, "--configs", dir, "--cases", strings.Join(cases, ","), "--batch", batches,
		"--frames", strconv.FormatInt(b.frames, 10), "--height", strconv.FormatInt(b.h, 10), "--width", strconv.FormatInt(b.w, 10),
		"--dtype", peerDType(b.dt), "--warmup", strconv.Itoa(b.warmup), "--runs", strconv.Itoa(b.runs),
		"--pipeline-runs", strconv.Itoa(min(b.runs, 3)), "--pipeline-warmup", "1", "--device", b.dev.String()}
	if compile {
		args = append(args, "--compile")
	}
	cmd := exec.Command(python, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	fmt.Fprintf(os.Stderr, "peer: %s %s\n", python, strings.Join(args, " "))
	runErr := cmd.Run()
	out := map[string]peerCase{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var c peerCase
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Name != "" {
			out[c.Name] = c
		}
	}
	if runErr != nil && len(out) == 0 {
		return nil, fmt.Errorf("peer: %w", runErr)
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "peer: %v (after %d cases)\n", runErr, len(out))
	}
	return out, nil
}

// attachPeer fills each result's peer columns from the peer's cases.
func (b *bench) attachPeer(cases map[string]peerCase, label string) {
	for i := range b.results {
		r := &b.results[i]
		p, ok := cases[peerOf(r.Name)]
		if !ok {
			continue
		}
		r.Peer = label
		if p.Name != r.Name {
			r.Peer += " (" + p.Name + ")"
		}
		if p.Error != "" {
			r.PeerError = p.Error
			continue
		}
		if len(p.RunsMS) == 0 {
			continue
		}
		med, lo, hi := spread(p.RunsMS)
		r.PeerMS, r.PeerMinMS, r.PeerMaxMS, r.PeerGiB = med, lo, hi, p.PeakGiB
		if r.MedianMS > 0 {
			r.Ratio = r.MedianMS / med
		}
	}
}

// peerDType is the peer script's name for a dtype.
func peerDType(d torch.DType) string {
	switch d {
	case torch.BFloat16:
		return "bf16"
	case torch.Float16:
		return "fp16"
	}
	return "fp32"
}

// spread is the median, minimum and maximum of runs.
func spread(runs []float64) (median, lo, hi float64) {
	s := slices.Sorted(slices.Values(runs))
	return s[len(s)/2], s[0], s[len(s)-1]
}
