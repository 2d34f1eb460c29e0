// Command distill trains SVD into a one-step generator with OSV: stage 1
// (latent GAN pretraining) or stage 2 (adversarial consistency
// distillation), from a folder of videos or an OpenVid-1M CSV.
//
//	distill -teacher SVD_DIR -dinov2 DINOV2_DIR -data VIDEOS|CSV -stage 1|2 -steps N -out DIR
//	        [-init STAGE1_CHECKPOINT] [-resume] [-config FILE] [-device cuda] [-dtype bf16]
//	        [-width 1024 -height 576 -frames 14 -fps 7]
//
// The videos are decoded and encoded once into a latent cache (OUT/cache,
// or -cache). Every -save-every steps, and when the run ends or is
// interrupted (SIGINT, SIGTERM), the whole state goes to
// OUT/checkpoint.safetensors; -resume continues from it. Each step appends
// its losses to OUT/metrics.jsonl and prints a progress line; at the end
// OUT/loss.svg plots the losses and OUT/export holds the student as a peft
// LoRA (export/lora) and as a merged diffusers UNet (export/unet).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/internal/torch"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/unet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "distill:", err)
		os.Exit(1)
	}
}

type flags struct {
	teacher, dinov2, data, videoDir, cache, out, init, config string
	stage, steps, saveEvery                                   int
	resume                                                    bool
	device, dtype                                             string
	width, height, frames                                     int
	fps                                                       float64
}

func parse(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("distill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.teacher, "teacher", "", "SVD pipeline folder (unet/, vae/, image_encoder/, feature_extractor/)")
	fs.StringVar(&f.dinov2, "dinov2", "", "DINOv2 folder for the discriminator (transformers layout)")
	fs.StringVar(&f.data, "data", "", "a folder of videos or an OpenVid-1M CSV")
	fs.StringVar(&f.videoDir, "video-dir", "", "where a CSV's videos are (default: the CSV's folder)")
	fs.StringVar(&f.cache, "cache", "", "latent cache folder (default OUT/cache)")
	fs.StringVar(&f.out, "out", "", "output folder: checkpoint, metrics, plot, export")
	fs.StringVar(&f.init, "init", "", "a checkpoint to start from (a stage-1 checkpoint for stage 2)")
	fs.StringVar(&f.config, "config", "", "training config (JSON, osv.TrainConfig keys)")
	fs.IntVar(&f.stage, "stage", 0, "1 or 2 (default: the config's, 2)")
	fs.IntVar(&f.steps, "steps", 1000, "train until this step")
	fs.IntVar(&f.saveEvery, "save-every", 500, "checkpoint every this many steps")
	fs.BoolVar(&f.resume, "resume", false, "continue from OUT/checkpoint.safetensors")
	fs.StringVar(&f.device, "device", "cpu", "cpu, cuda or cuda:N")
	fs.StringVar(&f.dtype, "dtype", "fp32", "frozen weights' dtype: fp32, fp16 or bf16")
	fs.IntVar(&f.width, "width", 1024, "clip width")
	fs.IntVar(&f.height, "height", 576, "clip height")
	fs.IntVar(&f.frames, "frames", 14, "frames per clip")
	fs.Float64Var(&f.fps, "fps", 7, "frames per second clips are sampled at")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case f.teacher == "" || f.dinov2 == "" || f.data == "" || f.out == "":
		return f, fmt.Errorf("-teacher, -dinov2, -data and -out are required (see -help)")
	case f.steps < 1 || f.saveEvery < 1:
		return f, fmt.Errorf("-steps %d and -save-every %d must be at least 1", f.steps, f.saveEvery)
	case f.stage != 0 && f.stage != 1 && f.stage != 2:
		return f, fmt.Errorf("-stage %d: want 1 or 2", f.stage)
	case f.resume && f.init != "":
		return f, fmt.Errorf("-resume and -init exclude each other")
	}
	if f.cache == "" {
		f.cache = filepath.Join(f.out, "cache")
	}
	return f, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	cfg := osv.TrainConfig{}
	if f.config != "" {
		if cfg, err = osv.LoadTrainConfig(f.config); err != nil {
			return err
		}
	}
	if f.stage != 0 {
		cfg.Stage = f.stage
	}
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	if err := ensureCache(ctx, f, stderr); err != nil {
		return err
	}
	cache, err := data.OpenCache(f.cache)
	if err != nil {
		return err
	}
	defer cache.Close()

	u, err := unet.Load(filepath.Join(f.teacher, "unet"), unet.WithDevice(f.device), unet.WithDType(f.dtype))
	if err != nil {
		return err
	}
	defer u.Close()
	bb, err := discriminator.LoadBackbone(f.dinov2, discriminator.WithDevice(f.device), discriminator.WithDType(f.dtype))
	if err != nil {
		return err
	}
	defer bb.Close()
	d, err := discriminator.New(bb, discriminator.DefaultConfig(), cfg.Seed)
	if err != nil {
		return err
	}
	defer d.Close()
	tr, err := osv.NewTrainer(u, d, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	ckpt := filepath.Join(f.out, "checkpoint.safetensors")
	switch {
	case f.resume:
		if err := tr.Restore(ckpt); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "resumed from %s at step %d\n", ckpt, tr.Steps())
	case f.init != "":
		if err := tr.Restore(f.init); err != nil {
			return err
		}
	}
	logf, err := osv.OpenMetricsLog(filepath.Join(f.out, "metrics.jsonl"))
	if err != nil {
		return err
	}
	defer logf.Close()

	dev, _ := torch.ParseDevice(f.device)
	t0, first := time.Now(), tr.Steps()
	for tr.Steps() < int64(f.steps) && ctx.Err() == nil {
		step := tr.Steps() + 1
		m, err := trainStep(tr, cache, dev, step, cfg.Seed)
		if err != nil {
			tr.Save(ckpt) // keep what was learnt before the failure
			return err
		}
		if err := logf.Write(m); err != nil {
			return err
		}
		done := float64(tr.Steps() - first)
		rate := done / time.Since(t0).Seconds()
		eta := time.Duration(float64(int64(f.steps)-tr.Steps())/rate) * time.Second
		fmt.Fprintf(stderr, "step %d/%d  %.2f it/s  loss_g %.4g  dist %.4g  adv %.4g  loss_d %.4g  eta %v\n",
			m.Step, f.steps, rate, m.LossG, m.LossDist, m.LossAdvG, m.LossD, eta.Round(time.Second))
		if tr.Steps()%int64(f.saveEvery) == 0 {
			if err := tr.Save(ckpt); err != nil {
				return err
			}
		}
	}
	if err := tr.Save(ckpt); err != nil {
		return err
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "interrupted: saved %s at step %d\n", ckpt, tr.Steps())
		return nil
	}
	if err := osv.PlotMetrics(filepath.Join(f.out, "metrics.jsonl"), filepath.Join(f.out, "loss.svg")); err != nil {
		return err
	}
	if err := tr.Export(filepath.Join(f.out, "export")); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "done: %d steps; %s\n", tr.Steps(), filepath.Join(f.out, "export"))
	return nil
}

// trainStep takes one step on the clip the step number selects: a seeded
// permutation of the cache per epoch, so a resumed run sees the same order.
func trainStep(tr *osv.Trainer, cache *data.Cache, dev torch.Device, step int64, seed uint64) (m osv.Metrics, err error) {
	defer torch.Recover(&err)
	n := int64(cache.Len())
	epoch, at := (step-1)/n, (step-1)%n
	perm := rand.New(rand.NewPCG(seed, uint64(epoch))).Perm(int(n))
	s := torch.NewScope()
	defer s.Close()
	e, err := cache.Entry(s, perm[at], dev)
	if err != nil {
		return m, err
	}
	return tr.Step(osv.BatchOf(s, e))
}

// ensureCache builds the latent cache unless its folder already has shards.
func ensureCache(ctx context.Context, f flags, stderr io.Writer) error {
	if c, err := data.OpenCache(f.cache); err == nil {
		c.Close()
		return nil
	}
	paths, err := data.List(f.data, f.videoDir)
	if err != nil {
		return err
	}
	v, err := vae.Load(filepath.Join(f.teacher, "vae"), vae.WithDevice(f.device), vae.WithDType(f.dtype))
	if err != nil {
		return err
	}
	defer v.Close()
	enc, err := clip.Load(filepath.Join(f.teacher, "image_encoder"), clip.WithDevice(f.device), clip.WithDType(f.dtype))
	if err != nil {
		return err
	}
	defer enc.Close()
	pre, err := clip.LoadPreprocessor(filepath.Join(f.teacher, "feature_extractor"))
	if err != nil {
		return err
	}
	o := data.Options{Frames: f.frames, FPS: f.fps, Width: f.width, Height: f.height}
	clips, stats, wait := data.Stream(ctx, paths, data.StreamOptions{Options: o,
		Report: func(p string, err error) { fmt.Fprintf(stderr, "skipped %s: %v\n", p, err) }})
	n, berr := data.BuildCache(f.cache, clips, data.Encoders{VAE: v, ImageEncoder: enc, Preprocessor: pre}, data.CacheOptions{FPS: f.fps})
	if berr != nil {
		for range clips {
		}
	}
	if err := errors.Join(berr, wait()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "cached %d clips in %s (%d skipped)\n", n, f.cache, stats.Skipped.Load())
	if n == 0 {
		return fmt.Errorf("no usable video in %s", f.data)
	}
	return nil
}
