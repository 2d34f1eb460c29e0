// Command bench measures the library on a GPU with full-size SVD models
// (random weights): the UNet forward at batch 1 and 2, the VAE decode of
// 14 frames and encode of one image, the CLIP image encoder, the 25-step
// guided pipeline and the 1-step pipeline end to end, and OSV's
// discriminator forward and backward on latents and on VAE-decoded pixels,
// and whole training iterations of stage 2 (14×320×576, k = 5) and stage 1
// (at the bench's size). Each case is timed by CUDA events over several
// runs after warm-up runs (median, min and max), with the caching
// allocator's peak memory; the cache is emptied before each case, and a
// case that fails is reported without stopping the others.
//
// The peer, diffusers on the same GPU in the same invocation, runs after
// ours whenever python3 imports torch, diffusers and transformers
// (peer/svd_peer.py: the same configs, sizes, dtype, run counts and
// timing), and each case prints ours, the peer's and the ratio.
//
//	go run -tags cuda ./examples/bench [-cases unet,vae,clip,pipeline,disc,train] [-variants] [-peer auto|off|compile] [-json out.json] [-profile DIR]
//
// With -profile, each case runs once more under libtorch's profiler: DIR
// gets its Chrome trace and a table of its GPU kernels by total time.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/torch"
)

// Result is one benchmark row: ours, and the peer's on the same case.
type Result struct {
	Name     string    `json:"name"`
	MedianMS float64   `json:"median_ms"`
	MinMS    float64   `json:"min_ms"`
	MaxMS    float64   `json:"max_ms"`
	RunsMS   []float64 `json:"runs_ms"`
	PeakGiB  float64   `json:"peak_gib"`
	// FusedCalls is the bridge's fused operations called in one timed
	// run (torch.FusedKernelLaunches: its fused kernels and fused
	// products): a check that a case took the path it names. A replayed
	// CUDA graph calls none from the host, so it counts 0.
	FusedCalls float64 `json:"fused_calls_per_run"`
	Error      string  `json:"error,omitempty"`
	Peer       string  `json:"peer,omitempty"`
	PeerMS     float64 `json:"peer_ms,omitempty"`
	PeerMinMS  float64 `json:"peer_min_ms,omitempty"`
	PeerMaxMS  float64 `json:"peer_max_ms,omitempty"`
	PeerGiB    float64 `json:"peer_gib,omitempty"`
	PeerError  string  `json:"peer_error,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"` // ours / the peer's median
}

type bench struct {
	dev          torch.Device
	dt           torch.DType
	frames, h, w int64
	warmup, runs int
	profileDir   string
	variants     bool
	trainCases   string         // -train-cases: the training cases, comma-separated (empty: the default set)
	skip         *regexp.Regexp // -skip: cases whose names it matches are not run
	results      []Result
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	device := flag.String("device", "cuda", "cuda or cuda:N")
	dtype := flag.String("dtype", "bf16", "weights and compute dtype")
	frames := flag.Int64("frames", 14, "frames")
	height := flag.Int64("height", 576, "video height in pixels")
	width := flag.Int64("width", 1024, "video width in pixels")
	batches := flag.String("batch", "1,2", "UNet batch sizes")
	warmup := flag.Int("warmup", 3, "untimed runs first")
	runs := flag.Int("runs", 10, "timed runs")
	cases := flag.String("cases", "unet,vae,clip,pipeline,disc,train", "which groups to run")
	trainH := flag.Int64("train-height", 320, "stage-2 training height in pixels")
	trainW := flag.Int64("train-width", 576, "stage-2 training width in pixels")
	solverSteps := flag.Int("k", 5, "stage-2 teacher solver steps")
	cudnnBench := flag.Bool("cudnn-benchmark", true, "let cuDNN pick convolution algorithms by timing")
	trainCases := flag.String("train-cases", "", "the training cases to run, comma-separated, from stage2, stage1, foreach, graph_denoisers, graph_step (default: stage2,stage1, and the last three with -variants)")
	variants := flag.Bool("variants", false, "also time the UNet with the alternative GroupNorm and attention kernels, the VAE decoder in the NCHW layout, and stage 2 with the multi-tensor optimisers (TrainConfig.Foreach) and its CUDA graphs (GraphDenoisers, GraphStep)")
	jsonOut := flag.String("json", "", "write results as JSON to this file")
	profile := flag.String("profile", "", "profile one more run of each case into this folder (Chrome traces and kernel summaries)")
	peerMode := flag.String("peer", "auto", "diffusers on the same cases: auto (when python3 has torch and diffusers), off, or compile (under torch.compile)")
	python := flag.String("python", "python3", "the peer's Python")
	peerScriptFlag := flag.String("peer-script", "", "the peer script (default: examples/bench/peer/svd_peer.py)")
	skip := flag.String("skip", "", "a regular expression: the cases whose names it matches are not run (say 'pipeline 25|b2')")
	flag.Parse()
	if !slices.Contains([]string{"auto", "off", "compile"}, *peerMode) {
		return fmt.Errorf("-peer %q: want auto, off or compile", *peerMode)
	}

	dev, err := torch.ParseDevice(*device)
	if err != nil {
		return err
	}
	if !dev.CUDA {
		return fmt.Errorf("the benchmarks need a CUDA device")
	}
	if err := torch.SetCuDNNBenchmark(*cudnnBench); err != nil {
		return err
	}
	dt, err := torch.ParseDType(*dtype)
	if err != nil {
		return err
	}
	b := &bench{dev: dev, dt: dt, frames: *frames, h: *height, w: *width, warmup: *warmup, runs: *runs,
		profileDir: *profile, variants: *variants, trainCases: *trainCases}
	if *skip != "" {
		if b.skip, err = regexp.Compile(*skip); err != nil {
			return fmt.Errorf("-skip: %w", err)
		}
	}
	if b.profileDir != "" {
		if err := os.MkdirAll(b.profileDir, 0o755); err != nil {
			return err
		}
	}
	groups := strings.Split(*cases, ",")
	if slices.Contains(groups, "unet") {
		if err := b.unet(*batches, *variants); err != nil {
			return err
		}
	}
	if slices.Contains(groups, "vae") || slices.Contains(groups, "clip") || slices.Contains(groups, "pipeline") {
		if err := b.pipeline(groups); err != nil {
			return err
		}
	}
	if slices.Contains(groups, "disc") {
		if err := b.discriminator(); err != nil {
			return err
		}
	}
	if slices.Contains(groups, "train") {
		if err := b.train(*trainH, *trainW, *solverSteps); err != nil {
			return err
		}
	}
	peerLabel := ""
	if *peerMode != "off" {
		peerLabel = "diffusers eager"
		if *peerMode == "compile" {
			peerLabel = "diffusers torch.compile"
		}
		if err := torch.EmptyCache(); err != nil {
			return err
		}
		script, err := peerScript(*peerScriptFlag)
		ok, why := err == nil, ""
		if err != nil {
			why = err.Error()
		} else {
			ok, why = peerAvailable(*python)
		}
		if !ok {
			fmt.Fprintf(os.Stderr, "no peer: %s\n", why)
		} else if cases, err := b.runPeer(*python, script, groups, *batches, *peerMode == "compile"); err != nil {
			fmt.Fprintf(os.Stderr, "no peer: %v\n", err)
		} else {
			b.attachPeer(cases, peerLabel)
		}
	}
	b.printTable()
	if *jsonOut != "" {
		out, _ := json.MarshalIndent(map[string]any{
			"date": time.Now().UTC().Format(time.RFC3339), "device": dev.String(), "dtype": dt.String(),
			"frames": *frames, "height": *height, "width": *width, "peer": peerLabel, "results": b.results,
		}, "", "  ")
		return os.WriteFile(*jsonOut, out, 0o644)
	}
	return nil
}

// measure times fn (warm-up runs first) and records the result. A case
// that fails is recorded with its error, the allocator's cache is emptied,
// and the next case runs: only a failure of the timing itself is returned.
func (b *bench) measure(name string, fn func() error) error {
	if b.skipped(name) {
		return nil
	}
	if err := torch.EmptyCache(); err != nil {
		return err
	}
	failed := func(err error) error {
		b.results = append(b.results, Result{Name: name, Error: err.Error()})
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return torch.EmptyCache()
	}
	for range b.warmup {
		if err := fn(); err != nil {
			return failed(err)
		}
	}
	if err := torch.Synchronize(b.dev); err != nil {
		return err
	}
	if err := torch.ResetPeakMemory(b.dev); err != nil {
		return err
	}
	r := Result{Name: name}
	launches := torch.FusedKernelLaunches()
	for range b.runs {
		timer, err := torch.StartTimer(b.dev)
		if err != nil {
			return err
		}
		if err := fn(); err != nil {
			timer.Stop()
			return failed(err)
		}
		ms, err := timer.Stop()
		if err != nil {
			return err
		}
		r.RunsMS = append(r.RunsMS, ms)
	}
	mem, err := torch.CUDAMemory(b.dev)
	if err != nil {
		return err
	}
	r.MedianMS, r.MinMS, r.MaxMS = spread(r.RunsMS)
	r.PeakGiB = float64(mem.Peak) / (1 << 30)
	if b.runs > 0 {
		r.FusedCalls = float64(torch.FusedKernelLaunches()-launches) / float64(b.runs)
	}
	b.results = append(b.results, r)
	fmt.Fprintf(os.Stderr, "%s: median %.1f ms, %.0f fused calls a run\n", name, r.MedianMS, r.FusedCalls)
	if b.profileDir != "" {
		return b.profileRun(name, fn)
	}
	return nil
}

// scoped runs f in a fresh scope and turns its panics into errors.
// skipped says whether -skip leaves the case out.
func (b *bench) skipped(name string) bool { return b.skip != nil && b.skip.MatchString(name) }

func scoped(f func(s *torch.Scope)) (err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	f(s)
	return nil
}

// printTable prints every case: ours (median, min–max, peak), the peer's,
// and the ratio of the medians.
func (b *bench) printTable() {
	fmt.Printf("%-44s %22s %9s   %22s %9s %7s\n", "case", "ours ms (min–max)", "peak GiB", "peer ms (min–max)", "peak GiB", "ratio")
	for _, r := range b.results {
		ours := "failed"
		peak := ""
		if r.Error == "" {
			ours = fmt.Sprintf("%.1f (%.1f–%.1f)", r.MedianMS, r.MinMS, r.MaxMS)
			peak = fmt.Sprintf("%.2f", r.PeakGiB)
		}
		peer, ppeak, ratio := "", "", ""
		switch {
		case r.PeerError != "":
			peer = "failed"
		case r.PeerMS > 0:
			peer = fmt.Sprintf("%.1f (%.1f–%.1f)", r.PeerMS, r.PeerMinMS, r.PeerMaxMS)
			ppeak = fmt.Sprintf("%.2f", r.PeerGiB)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Printf("%-44s %22s %9s   %22s %9s %7s\n", r.Name, ours, peak, peer, ppeak, ratio)
	}
	for _, r := range b.results {
		if r.Error != "" {
			fmt.Printf("%s: %s\n", r.Name, firstLine(r.Error))
		}
		if r.PeerError != "" {
			fmt.Printf("%s, %s: %s\n", r.Name, r.Peer, firstLine(r.PeerError))
		}
	}
	if len(b.results) > 0 && b.results[0].Peer != "" {
		fmt.Printf("peer: %s; ratio = ours / peer (below 1: ours is faster)\n", b.results[0].Peer)
	}
}
