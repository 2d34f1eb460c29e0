// Command bench measures the library on a GPU with full-size SVD models
// (random weights): the UNet forward at batch 1 and 2, the VAE decode of
// 14 frames and encode of one image, the CLIP image encoder, the 25-step
// guided pipeline and the 1-step pipeline end to end, and OSV's
// discriminator forward and backward on latents and on VAE-decoded pixels,
// and whole training iterations of stage 2 (14×320×576, k = 5) and stage 1
// (at the bench's size). Each case is the
// median of several runs timed by CUDA events, with the caching allocator's
// peak memory; the peer numbers printed beside ours are those recorded in
// docs/BENCHMARKS.md.
//
//	go run -tags cuda ./examples/bench [-cases unet,vae,clip,pipeline,disc,train] [-variants] [-json out.json] [-profile DIR]
//
// With -profile, each case runs once more under libtorch's profiler: DIR
// gets its Chrome trace and a table of its GPU kernels by total time.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/torch"
)

// Result is one benchmark row.
type Result struct {
	Name     string    `json:"name"`
	MedianMS float64   `json:"median_ms"`
	MinMS    float64   `json:"min_ms"`
	RunsMS   []float64 `json:"runs_ms"`
	PeakGiB  float64   `json:"peak_gib"`
	PeerMS   float64   `json:"peer_ms,omitempty"`
	PeerGiB  float64   `json:"peer_gib,omitempty"`
	Peer     string    `json:"peer,omitempty"`
}

// peer is a reference measurement on the same GPU (docs/BENCHMARKS.md).
type peer struct {
	ms, gib float64
	name    string
}

// peers hold for the default sizes (bf16, 14 frames, 576×1024).
var peers = map[string]peer{
	"unet forward b1":       {198, 5.0, "diffusers eager"},
	"unet forward b2":       {363, 7.3, "diffusers eager"},
	"vae decode 14 frames":  {1179, 20, "diffusers eager fp16"},
	"vae encode 1 image":    {26, 0, "diffusers eager fp16"},
	"clip encode 1 image":   {8, 0, "diffusers eager fp16"},
	"pipeline 25 steps cfg": {10500, 0, "diffusers eager fp16"},
	"pipeline 1 step cfg":   {1500, 0, "diffusers eager fp16"},
}

type bench struct {
	dev          torch.Device
	dt           torch.DType
	frames, h, w int64
	warmup, runs int
	defaultSizes bool
	profileDir   string
	variants     bool
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
	variants := flag.Bool("variants", false, "also time the UNet with the alternative GroupNorm and attention kernels, and the VAE decoder in the NCHW layout")
	jsonOut := flag.String("json", "", "write results as JSON to this file")
	profile := flag.String("profile", "", "profile one more run of each case into this folder (Chrome traces and kernel summaries)")
	flag.Parse()

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
		defaultSizes: dt == torch.BFloat16 && *frames == 14 && *height == 576 && *width == 1024, profileDir: *profile, variants: *variants}
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
	fmt.Printf("%-38s %10s %10s %10s   %s\n", "case", "median ms", "min ms", "peak GiB", "peer")
	for _, r := range b.results {
		p := ""
		if r.Peer != "" {
			p = fmt.Sprintf("%s %.0f ms", r.Peer, r.PeerMS)
			if r.PeerGiB > 0 {
				p += fmt.Sprintf(", %.1f GiB", r.PeerGiB)
			}
		}
		fmt.Printf("%-38s %10.1f %10.1f %10.2f   %s\n", r.Name, r.MedianMS, r.MinMS, r.PeakGiB, p)
	}
	if *jsonOut != "" {
		out, _ := json.MarshalIndent(map[string]any{
			"date": time.Now().UTC().Format(time.RFC3339), "device": dev.String(), "dtype": dt.String(),
			"frames": *frames, "height": *height, "width": *width, "results": b.results,
		}, "", "  ")
		return os.WriteFile(*jsonOut, out, 0o644)
	}
	return nil
}

// measure times fn (warm-up runs first) and records the result.
func (b *bench) measure(name string, fn func() error) error {
	for range b.warmup {
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := torch.Synchronize(b.dev); err != nil {
		return err
	}
	if err := torch.ResetPeakMemory(b.dev); err != nil {
		return err
	}
	r := Result{Name: name}
	for range b.runs {
		timer, err := torch.StartTimer(b.dev)
		if err != nil {
			return err
		}
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
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
	sorted := slices.Sorted(slices.Values(r.RunsMS))
	r.MedianMS, r.MinMS = sorted[len(sorted)/2], sorted[0]
	r.PeakGiB = float64(mem.Peak) / (1 << 30)
	if p, ok := peers[name]; ok && b.defaultSizes {
		r.PeerMS, r.PeerGiB, r.Peer = p.ms, p.gib, p.name
	}
	b.results = append(b.results, r)
	fmt.Fprintf(os.Stderr, "%s: median %.1f ms\n", name, r.MedianMS)
	if b.profileDir != "" {
		return b.profileRun(name, fn)
	}
	return nil
}

// scoped runs f in a fresh scope and turns its panics into errors.
func scoped(f func(s *torch.Scope)) (err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	f(s)
	return nil
}
