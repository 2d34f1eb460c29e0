// Command bench measures the library on a GPU: SVD's full-size UNet
// (random weights) forward at batch 1 and 2, with the median of several
// runs timed by CUDA events and the peak memory of the caching allocator.
// The peer numbers printed beside ours are those recorded in
// docs/BENCHMARKS.md.
//
//	go run ./examples/bench [-dtype bf16] [-frames 14] [-height 576] [-width 1024] [-json out.json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/internal/torch"
	"github.com/onestepvideo/osv-go/unet"
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
	"unet forward b1": {198, 5.0, "diffusers eager"},
	"unet forward b2": {363, 7.3, "diffusers eager"},
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
	height := flag.Int64("height", 576, "video height in pixels (latents are /8)")
	width := flag.Int64("width", 1024, "video width in pixels")
	batches := flag.String("batch", "1,2", "comma-separated batch sizes")
	warmup := flag.Int("warmup", 3, "untimed runs first")
	runs := flag.Int("runs", 10, "timed runs")
	cudnnBench := flag.Bool("cudnn-benchmark", true, "let cuDNN pick convolution algorithms by timing")
	variants := flag.Bool("variants", false, "also time the alternative GroupNorm and attention kernels")
	jsonOut := flag.String("json", "", "write results as JSON to this file")
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
	t0 := time.Now()
	m, err := unet.New(unet.DefaultConfig(), unet.WithDevice(dev.String()), unet.WithDType(*dtype))
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(os.Stderr, "SVD UNet: %.3g parameters, %s on %s, built in %.1fs\n", float64(m.NumParams()), dt, dev, time.Since(t0).Seconds())

	type variant struct {
		name      string
		gn        torch.GroupNormMode
		shortAttn int64
	}
	vs := []variant{{"", torch.GroupNormSplitCUDA, 0}}
	if *variants {
		vs = append(vs, variant{" [native gn]", torch.GroupNormNative, 0}, variant{" [math attn ≤32]", torch.GroupNormSplitCUDA, 32})
	}
	var results []Result
	for _, v := range vs {
		if err := torch.SetGroupNormMode(v.gn); err != nil {
			return err
		}
		if err := torch.SetShortAttention(v.shortAttn); err != nil {
			return err
		}
		for _, bs := range strings.Split(*batches, ",") {
			b, err := strconv.ParseInt(strings.TrimSpace(bs), 10, 64)
			if err != nil || b < 1 {
				return fmt.Errorf("bad batch size %q", bs)
			}
			r, err := benchUNet(m, dev, dt, b, *frames, *height/8, *width/8, *warmup, *runs)
			if err != nil {
				return err
			}
			r.Name += v.name
			if v.name != "" {
				r.PeerMS, r.PeerGiB, r.Peer = 0, 0, ""
			}
			results = append(results, r)
		}
	}
	fmt.Printf("%-38s %10s %10s %10s   %s\n", "case", "median ms", "min ms", "peak GiB", "peer (ms, GiB)")
	for _, r := range results {
		peer := ""
		if r.Peer != "" {
			peer = fmt.Sprintf("%s %.0f ms, %.1f GiB", r.Peer, r.PeerMS, r.PeerGiB)
		}
		fmt.Printf("%-38s %10.1f %10.1f %10.2f   %s\n", r.Name, r.MedianMS, r.MinMS, r.PeakGiB, peer)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"date": time.Now().UTC().Format(time.RFC3339), "device": dev.String(), "dtype": dt.String(),
			"frames": *frames, "height": *height, "width": *width, "results": results,
		}, "", "  ")
		return os.WriteFile(*jsonOut, b, 0o644)
	}
	return nil
}

func benchUNet(m *unet.Model, dev torch.Device, dt torch.DType, b, f, h, w int64, warmup, runs int) (Result, error) {
	name := fmt.Sprintf("unet forward b%d", b)
	g, err := torch.NewGenerator(1)
	if err != nil {
		return Result{}, err
	}
	defer g.Close()
	s := torch.NewScope()
	defer s.Close()
	cfg := m.Config
	sample, err := g.Randn(s, []int64{b, f, cfg.InChannels, h, w}, dt, dev)
	if err != nil {
		return Result{}, err
	}
	ctx, err := g.Randn(s, []int64{b, 1, cfg.CrossAttentionDim.At(0)}, dt, dev)
	if err != nil {
		return Result{}, err
	}
	t, err := torch.Full(s, []int64{b}, 0.25*2.0, torch.Float32, dev) // ¼·ln σ at σ ≈ e²
	if err != nil {
		return Result{}, err
	}
	ids, err := torch.Full(s, []int64{b, cfg.NumTimeIDs()}, 6, torch.Float32, dev)
	if err != nil {
		return Result{}, err
	}
	once := func() (err error) {
		defer torch.Recover(&err)
		c := s.Child()
		defer c.Close()
		m.Apply(c, sample, t, ctx, ids)
		return nil
	}
	for range warmup {
		if err := once(); err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := torch.Synchronize(dev); err != nil {
		return Result{}, err
	}
	if err := torch.ResetPeakMemory(dev); err != nil {
		return Result{}, err
	}
	r := Result{Name: name}
	for range runs {
		timer, err := torch.StartTimer(dev)
		if err != nil {
			return Result{}, err
		}
		if err := once(); err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
		ms, err := timer.Stop()
		if err != nil {
			return Result{}, err
		}
		r.RunsMS = append(r.RunsMS, ms)
	}
	mem, err := torch.CUDAMemory(dev)
	if err != nil {
		return Result{}, err
	}
	sorted := slices.Sorted(slices.Values(r.RunsMS))
	r.MedianMS = sorted[len(sorted)/2]
	r.MinMS = sorted[0]
	r.PeakGiB = float64(mem.Peak) / (1 << 30)
	if p, ok := peers[name]; ok && dt == torch.BFloat16 && f == 14 && h == 72 && w == 128 {
		r.PeerMS, r.PeerGiB, r.Peer = p.ms, p.gib, p.name
	}
	return r, nil
}
