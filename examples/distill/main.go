// Command distill trains SVD into a one-step generator with OSV: stage 1
// (latent GAN pretraining) or stage 2 (adversarial consistency
// distillation), from a folder of videos or an OpenVid-1M CSV.
//
//	distill -teacher SVD_DIR -dinov2 DINOV2_DIR -data VIDEOS|CSV -stage 1|2 -steps N -out DIR
//	        [-init STAGE1_CHECKPOINT] [-resume] [-config FILE] [-device cuda] [-dtype bf16]
//	        [-width 1024 -height 576 -frames 14 -fps 7] [-nproc N [-backend nccl|gloo]]
//
// Data-parallel: -nproc N starts N local processes, one rank each (rank r
// on cuda:r with -device cuda), through c10d (NCCL on CUDA, Gloo on the
// CPU). The same command started by another launcher, with RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set, runs as that
// rank. Each step the world takes world-size consecutive clips of the
// epoch's order, rank r the r-th, and averages its gradients; only rank 0
// writes checkpoints, metrics, progress and the export. OUT/world.json
// records the world size, and -resume needs the same one.
//
// The videos are decoded and encoded once into a latent cache (OUT/cache,
// or -cache). Every -save-every steps, and when the run ends or is
// interrupted (SIGINT, SIGTERM), the whole state goes to
// OUT/checkpoint.safetensors; -resume continues from it. Each step appends
// its losses to OUT/metrics.jsonl and prints a progress line; at the end
// OUT/loss.svg plots the losses and OUT/export holds the student as a peft
// LoRA (export/lora) and as a merged diffusers UNet (export/unet).
//
// FVD on a held-out set: -fvd-detector i3d_torchscript.pt -fvd-data
// VIDEOS|CSV [-fvd-every N] [-fvd-clips 64] [-fvd-steps 1] generates a clip
// from the first frame of each held-out video (decoded as the training
// data) with the student (the consistency sampler on the training grid,
// -fvd-steps steps) every N steps (-save-every by default) and at the end,
// and appends {"step", "fvd", "fvd_clips", "fvd_seconds"} to
// OUT/metrics.jsonl (osv/fvd: StyleGAN-V's detector and statistics). Rank
// 0 evaluates while the other ranks wait at a barrier (within
// -dist-timeout).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/torch"
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
	nproc                                                     int
	backend                                                   string
	distTimeout                                               time.Duration
	fvdDetector, fvdData                                      string
	fvdEvery, fvdClips, fvdSteps                              int
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
	fs.IntVar(&f.nproc, "nproc", 0, "start this many local processes, one data-parallel rank each")
	fs.StringVar(&f.backend, "backend", "", "data-parallel backend: nccl or gloo (default: nccl on CUDA, gloo on the CPU)")
	fs.DurationVar(&f.distTimeout, "dist-timeout", 10*time.Minute, "how long a rank waits for the others before it fails")
	fs.StringVar(&f.fvdDetector, "fvd-detector", "", "evaluate FVD with this I3D TorchScript file (StyleGAN-V's i3d_torchscript.pt)")
	fs.StringVar(&f.fvdData, "fvd-data", "", "held-out videos for FVD: a folder or an OpenVid-1M CSV")
	fs.IntVar(&f.fvdEvery, "fvd-every", 0, "evaluate FVD every this many steps (default: -save-every)")
	fs.IntVar(&f.fvdClips, "fvd-clips", 64, "held-out clips FVD uses at most")
	fs.IntVar(&f.fvdSteps, "fvd-steps", 1, "the student's sampling steps for FVD")
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
	case f.nproc < 0:
		return f, fmt.Errorf("-nproc %d must not be negative", f.nproc)
	case f.backend != "" && f.backend != "nccl" && f.backend != "gloo":
		return f, fmt.Errorf("-backend %q: want nccl or gloo", f.backend)
	case f.distTimeout <= 0:
		return f, fmt.Errorf("-dist-timeout %v must be positive", f.distTimeout)
	case (f.fvdDetector == "") != (f.fvdData == ""):
		return f, fmt.Errorf("-fvd-detector and -fvd-data go together")
	case f.fvdEvery < 0 || f.fvdClips < 2 || f.fvdSteps < 1:
		return f, fmt.Errorf("-fvd-every %d, -fvd-clips %d, -fvd-steps %d: want ≥ 0, ≥ 2 and ≥ 1", f.fvdEvery, f.fvdClips, f.fvdSteps)
	}
	if f.fvdEvery == 0 {
		f.fvdEvery = f.saveEvery
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
	dc, inWorld, err := torch.DistConfigFromEnv(f.distTimeout)
	if err != nil {
		return err
	}
	if f.nproc > 0 {
		if inWorld {
			return fmt.Errorf("-nproc %d inside a launched world (WORLD_SIZE is set)", f.nproc)
		}
		// The cache is built once, here; the ranks only read it.
		if err := ensureCache(ctx, f, stderr); err != nil {
			return err
		}
		return launch(ctx, f.nproc, append(slices.Clone(args), "-nproc", "0"), stderr)
	}
	if !inWorld {
		return train(ctx, f, cfg, nil, stderr)
	}
	if strings.HasPrefix(f.device, "cuda") {
		f.device = fmt.Sprintf("cuda:%d", dc.LocalRank)
	}
	dc.Backend = torch.Gloo
	if f.backend == "nccl" || (f.backend == "" && strings.HasPrefix(f.device, "cuda") && torch.DistributedBuilt(torch.NCCL)) {
		dc.Backend = torch.NCCL
	}
	pg, err := torch.NewProcessGroup(dc)
	if err != nil {
		return err
	}
	defer pg.Close()
	if err := train(ctx, f, cfg, pg, stderr); err != nil {
		return fmt.Errorf("rank %d of %d: %w", dc.Rank, dc.World, err)
	}
	return nil
}

// worldFile records the world size of the run that wrote OUT's checkpoint.
type worldFile struct {
	WorldSize int `json:"world_size"`
}

// train runs the training loop, alone (pg nil) or as one rank of pg.
func train(ctx context.Context, f flags, cfg osv.TrainConfig, pg *torch.ProcessGroup, stderr io.Writer) error {
	rank, world := 0, 1
	if pg != nil {
		rank, world = pg.Config.Rank, pg.Config.World
	}
	lead := rank == 0
	worldPath := filepath.Join(f.out, "world.json")
	if f.resume {
		var w worldFile
		if b, err := os.ReadFile(worldPath); err == nil {
			if err := json.Unmarshal(b, &w); err != nil {
				return fmt.Errorf("%s: %w", worldPath, err)
			}
		} else {
			w.WorldSize = 1 // checkpoints from before world.json: one process
		}
		if w.WorldSize != world {
			return fmt.Errorf("-resume: %s was written by a world of %d processes, this one has %d (resume with -nproc %d)",
				filepath.Join(f.out, "checkpoint.safetensors"), w.WorldSize, world, w.WorldSize)
		}
	}
	if lead {
		if err := ensureCache(ctx, f, stderr); err != nil {
			return err
		}
	}
	if pg != nil {
		if err := pg.Barrier(); err != nil { // the cache is there for every rank
			return err
		}
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
		if lead {
			fmt.Fprintf(stderr, "resumed from %s at step %d\n", ckpt, tr.Steps())
		}
	case f.init != "":
		if err := tr.Restore(f.init); err != nil {
			return err
		}
	}
	if pg != nil {
		tr.Group = pg
		if err := tr.Broadcast(); err != nil {
			return err
		}
		if lead {
			fmt.Fprintf(stderr, "data-parallel: %d ranks through %v, %d clips a step\n", world, pg.Config.Backend, world)
		}
	}
	save := func() error {
		if !lead {
			return nil
		}
		if err := tr.Save(ckpt); err != nil {
			return err
		}
		b, _ := json.Marshal(worldFile{WorldSize: world})
		return os.WriteFile(worldPath, b, 0o644)
	}
	var logf *osv.MetricsLog
	var eval *fvdEval
	if lead {
		if logf, err = osv.OpenMetricsLog(filepath.Join(f.out, "metrics.jsonl")); err != nil {
			return err
		}
		defer logf.Close()
		if f.fvdDetector != "" {
			if eval, err = newFVDEval(ctx, f, cfg, u, stderr); err != nil {
				return err
			}
			defer eval.Close()
		}
	}

	dev, _ := torch.ParseDevice(f.device)
	t0, first := time.Now(), tr.Steps()
	for tr.Steps() < int64(f.steps) {
		if stop, err := agreeToStop(ctx, pg, dev); err != nil {
			return err
		} else if stop {
			break
		}
		step := tr.Steps() + 1
		m, err := trainStep(tr, cache, dev, step, cfg.Seed, rank, world)
		if err != nil {
			save() // keep what was learnt before the failure
			return err
		}
		evalNow := f.fvdDetector != "" && (tr.Steps()%int64(f.fvdEvery) == 0 || tr.Steps() == int64(f.steps))
		if !lead {
			if evalNow && pg != nil {
				if err := pg.Barrier(); err != nil { // rank 0 evaluates FVD
					return err
				}
			}
			continue
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
			if err := save(); err != nil {
				return err
			}
		}
		if evalNow {
			switch rec, err := eval.evaluate(ctx, tr, tr.Steps()); {
			case err != nil && ctx.Err() != nil: // interrupted: the loop stops at its next check
			case err != nil:
				return err
			default:
				if err := logf.Write(rec); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "step %d  fvd %.4g  (%d held-out clips, %.1f s)\n", rec.Step, rec.FVD, rec.Clips, rec.Seconds)
			}
			if pg != nil {
				if err := pg.Barrier(); err != nil {
					return err
				}
			}
		}
	}
	if err := save(); err != nil {
		return err
	}
	if tr.Steps() < int64(f.steps) {
		if lead {
			fmt.Fprintf(stderr, "interrupted: saved %s at step %d\n", ckpt, tr.Steps())
		}
		return nil
	}
	if !lead {
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

// agreeToStop reports whether the run should stop before its next step:
// alone, when ctx is done; in a world, when ctx is done on any rank, so
// that every rank stops at the same step.
func agreeToStop(ctx context.Context, pg *torch.ProcessGroup, dev torch.Device) (stop bool, err error) {
	if pg == nil {
		return ctx.Err() != nil, nil
	}
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	v := float32(0)
	if ctx.Err() != nil {
		v = 1
	}
	if pg.Config.Backend == torch.Gloo {
		dev = torch.CPU
	}
	flag, err := torch.FromFloat32(s, []float32{v}, []int64{1}, torch.Float32, dev)
	if err != nil {
		return false, err
	}
	if err := pg.AllReduceMean([]*torch.Tensor{flag}); err != nil {
		return false, err
	}
	got, err := flag.Float32s()
	if err != nil {
		return false, err
	}
	return got[0] > 0, nil
}

// trainStep takes one step on the clip of this rank: the world's steps
// walk a seeded permutation of the cache per epoch, world clips a step,
// rank r taking the r-th; a resumed run (of the same world size) sees the
// same order.
func trainStep(tr *osv.Trainer, cache *data.Cache, dev torch.Device, step int64, seed uint64, rank, world int) (m osv.Metrics, err error) {
	defer torch.Recover(&err)
	n := int64(cache.Len())
	g := (step-1)*int64(world) + int64(rank)
	epoch, at := g/n, g%n
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
