package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// pipeline times the VAE, the image encoder and the whole pipeline with
// SVD's full-size models (random weights).
func (b *bench) pipeline(groups []string) error {
	t0 := time.Now()
	dev, dt := b.dev.String(), b.dt.String()
	v, err := vae.New(vae.DefaultConfig(), vae.WithDevice(dev), vae.WithDType(dt))
	if err != nil {
		return err
	}
	enc, err := clip.New(clip.DefaultConfig(), clip.WithDevice(dev), clip.WithDType(dt))
	if err != nil {
		v.Close()
		return err
	}
	var u *unet.Model
	if slices.Contains(groups, "pipeline") {
		if u, err = unet.New(unet.DefaultConfig(), unet.WithDevice(dev), unet.WithDType(dt)); err != nil {
			v.Close()
			enc.Close()
			return err
		}
	} else {
		defer v.Close()
		defer enc.Close()
	}
	fmt.Fprintf(os.Stderr, "VAE %.3g, CLIP %.3g parameters, built in %.1fs\n", float64(v.NumParams()), float64(enc.NumParams()), time.Since(t0).Seconds())
	g, err := torch.NewGenerator(2)
	if err != nil {
		return err
	}
	defer g.Close()
	s := torch.NewScope()
	defer s.Close()
	image, err := g.Rand(s, []int64{1, 3, b.h, b.w}, torch.Float32, b.dev)
	if err != nil {
		return err
	}
	if slices.Contains(groups, "vae") {
		z, err := g.Randn(s, []int64{b.frames, v.Config.LatentChannels, b.h / 8, b.w / 8}, b.dt, b.dev)
		if err != nil {
			return err
		}
		decode := func() error {
			return scoped(func(c *torch.Scope) { v.DecodeApply(c, z, int(b.frames), int(b.frames)) })
		}
		if err := b.measure(fmt.Sprintf("vae decode %d frames", b.frames), decode); err != nil {
			return err
		}
		if b.variants {
			for _, v := range []struct {
				name    string
				layout  torch.LayoutMode
				unfused bool
			}{{"nchw", torch.LayoutContiguous, false}, {"unfused", torch.LayoutChannelsLastCUDA, true}, {"nchw, unfused", torch.LayoutContiguous, true}} {
				torch.SetLayoutMode(v.layout)
				if err := torch.SetFusedKernels(!v.unfused); err != nil {
					return err
				}
				err := b.measure(fmt.Sprintf("vae decode %d frames [%s]", b.frames, v.name), decode)
				torch.SetLayoutMode(torch.LayoutChannelsLastCUDA)
				if ferr := torch.SetFusedKernels(true); err == nil {
					err = ferr
				}
				if err != nil {
					return err
				}
			}
		}
		if err := b.measure("vae encode 1 image", func() error {
			return scoped(func(c *torch.Scope) { v.EncodeApply(c, c.Cast(c.AddScalar(c.MulScalar(image, 2), -1), b.dt)) })
		}); err != nil {
			return err
		}
	}
	fe := clip.DefaultPreprocessor()
	if slices.Contains(groups, "clip") {
		if err := b.measure("clip encode 1 image", func() error {
			return scoped(func(c *torch.Scope) { enc.Apply(c, c.Cast(fe.Apply(c, image), b.dt)) })
		}); err != nil {
			return err
		}
	}
	if u == nil {
		return nil
	}
	p, err := osv.NewPipeline(u, v, enc, fe, solver.DefaultSchedulerConfig())
	if err != nil {
		return err
	}
	defer p.Close()
	for _, c := range []struct {
		name    string
		steps   int
		maxG    float64
		sampler osv.Sampler
	}{
		{"pipeline 25 steps cfg", 25, 3, nil}, {"pipeline 1 step cfg", 1, 3, nil}, {"pipeline 1 step", 1, 1, nil},
		{"pipeline student 1 step consistency", 1, 1, osv.ConsistencySampler{}},
		{"pipeline student 1 step tts (2 unet calls)", 1, 1, osv.TTSSampler{}},
	} {
		runs, warm := b.runs, b.warmup
		b.runs, b.warmup = min(runs, 3), 1
		err := b.measure(c.name, func() error {
			return scoped(func(sc *torch.Scope) {
				o := osv.GenerateOptions{Sampler: c.sampler, Width: int(b.w), Height: int(b.h), NumFrames: int(b.frames),
					NumInferenceSteps: c.steps, MaxGuidanceScale: c.maxG, MinGuidanceScale: 1}
				p.Apply(context.Background(), sc, image, o)
			})
		})
		b.runs, b.warmup = runs, warm
		if err != nil {
			return err
		}
	}
	return nil
}
