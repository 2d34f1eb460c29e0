package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/osv/fvd"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// fvdEval measures the student's FVD on held-out videos: each video's
// first frame goes through the student (the pipeline over the trainer's
// UNet, adapters on, with the consistency sampler on the training grid),
// and the generated clips' I3D features are compared with the real clips'.
type fvdEval struct {
	det    *fvd.Detector
	pipe   *osv.Pipeline // over the trainer's UNet; never closed (the UNet is the trainer's)
	vae    *vae.Model
	enc    *clip.Model
	images []*data.Clip // the held-out clips' first frames
	real   [][]float64  // the held-out clips' features
	opts   osv.GenerateOptions
}

// fvdRecord is the metrics line of one evaluation.
type fvdRecord struct {
	Step    int64   `json:"step"`
	FVD     float64 `json:"fvd"`
	Clips   int     `json:"fvd_clips"`
	Seconds float64 `json:"fvd_seconds"`
}

// newFVDEval loads the detector, the VAE and the image encoder, decodes
// the held-out videos as training decodes its data and computes the real
// clips' features.
func newFVDEval(ctx context.Context, f flags, cfg osv.TrainConfig, u *unet.Model, stderr io.Writer) (e *fvdEval, err error) {
	e = &fvdEval{}
	defer func() {
		if err != nil {
			e.Close()
			e = nil
		}
	}()
	if e.det, err = fvd.LoadDetector(f.fvdDetector, fvd.WithDevice(f.device)); err != nil {
		return nil, err
	}
	if e.vae, err = vae.Load(filepath.Join(f.teacher, "vae"), vae.WithDevice(f.device), vae.WithDType(f.dtype)); err != nil {
		return nil, err
	}
	if e.enc, err = clip.Load(filepath.Join(f.teacher, "image_encoder"), clip.WithDevice(f.device), clip.WithDType(f.dtype)); err != nil {
		return nil, err
	}
	pre, err := clip.LoadPreprocessor(filepath.Join(f.teacher, "feature_extractor"))
	if err != nil {
		return nil, err
	}
	sc, err := solver.LoadSchedulerConfig(filepath.Join(f.teacher, "scheduler", "scheduler_config.json"))
	if err != nil {
		return nil, err
	}
	if e.pipe, err = osv.NewPipeline(u, e.vae, e.enc, pre, sc); err != nil {
		return nil, err
	}
	e.opts = osv.GenerateOptions{
		Sampler: osv.ConsistencySampler{Schedule: osv.ConsistencySchedule{
			Levels: cfg.GridSize, SigmaMin: cfg.SigmaMin, SigmaMax: cfg.SigmaMax, Rho: cfg.Rho}},
		Width: f.width, Height: f.height, NumFrames: f.frames, NumInferenceSteps: f.fvdSteps,
		FPS: int(math.Round(f.fps)),
	}

	paths, err := data.List(f.fvdData, f.videoDir)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clips, stats, wait := data.Stream(sctx, paths, data.StreamOptions{
		Options: data.Options{Frames: f.frames, FPS: f.fps, Width: f.width, Height: f.height},
		Report:  func(p string, err error) { fmt.Fprintf(stderr, "fvd: skipped %v\n", err) },
	})
	var held []*data.Clip
	for c := range clips {
		if len(held) < f.fvdClips {
			held = append(held, c)
			if len(held) == f.fvdClips {
				cancel()
			}
		}
	}
	if werr := wait(); werr != nil && len(held) < f.fvdClips {
		return nil, werr
	}
	if len(held) < 2 {
		return nil, fmt.Errorf("-fvd-data %s: %d usable videos (%d skipped): FVD needs at least 2", f.fvdData, len(held), stats.Skipped.Load())
	}
	if e.real, err = e.det.ClipFeatures(held); err != nil {
		return nil, err
	}
	for _, c := range held {
		n := c.Width * c.Height * 3
		e.images = append(e.images, &data.Clip{Path: c.Path, Frames: 1, Width: c.Width, Height: c.Height, Pixels: c.Pixels[:n:n]})
	}
	fmt.Fprintf(stderr, "fvd: %d held-out clips from %s (%d skipped), detector %s\n", len(held), f.fvdData, stats.Skipped.Load(), f.fvdDetector)
	return e, nil
}

// evaluate generates a clip from each held-out first frame with the
// student (seeded by the clip's index, so that evaluations differ only by
// the weights) and returns the FVD against the real clips. The adapters
// record no gradient meanwhile.
func (e *fvdEval) evaluate(ctx context.Context, tr *osv.Trainer, step int64) (rec fvdRecord, err error) {
	defer torch.Recover(&err)
	start := time.Now()
	params := tr.Student.Trainable()
	for _, p := range params {
		if err := p.SetRequiresGrad(false); err != nil {
			return rec, err
		}
	}
	defer func() {
		for _, p := range params {
			if rerr := p.SetRequiresGrad(true); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	dev := e.pipe.Device()
	fake := make([][]float64, 0, len(e.images))
	for i, img := range e.images {
		rows, err := func() ([][]float64, error) {
			s := torch.NewScope()
			defer s.Close()
			x, err := fvd.ClipTensor(s, img, dev) // [1, 3, H, W]
			if err != nil {
				return nil, err
			}
			o := e.opts
			o.Seed = uint64(i)
			frames := e.pipe.Apply(ctx, s, x, o) // [1, F, 3, H, W] in [0, 1]
			return e.det.Features([]*torch.Tensor{frames})
		}()
		if err != nil {
			return rec, fmt.Errorf("fvd: held-out clip %s: %w", img.Path, err)
		}
		fake = append(fake, rows...)
	}
	score, err := fvd.Distance(fake, e.real)
	if err != nil {
		return rec, err
	}
	return fvdRecord{Step: step, FVD: score, Clips: len(fake), Seconds: time.Since(start).Seconds()}, nil
}

// Close releases the detector, the VAE and the image encoder (not the
// trainer's UNet).
func (e *fvdEval) Close() {
	if e == nil {
		return
	}
	if e.det != nil {
		e.det.Close()
	}
	if e.vae != nil {
		e.vae.Close()
	}
	if e.enc != nil {
		e.enc.Close()
	}
}
