package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// train times whole training iterations of osv.Trainer with the full-size
// SVD UNet and a DINOv2-base discriminator (random weights), LoRA rank 64
// and the paper's defaults: stage 2 (k teacher steps with guidance, the
// EMA target, the adversarial terms, both updates) at stage2H×stage2W, and
// stage 1 at the bench's own size.
func (b *bench) train(stage2H, stage2W int64, k int) error {
	cases, err := b.trainCaseList(stage2H, stage2W)
	if err != nil {
		return err
	}
	t0 := time.Now()
	dev, dt := b.dev.String(), b.dt.String()
	u, err := unet.New(unet.DefaultConfig(), unet.WithDevice(dev), unet.WithDType(dt))
	if err != nil {
		return err
	}
	defer u.Close()
	bcfg := discriminator.DefaultBackboneConfig()
	bcfg.ImageSize = 518
	bb, err := discriminator.NewBackbone(bcfg, discriminator.WithDevice(dev), discriminator.WithDType(dt))
	if err != nil {
		return err
	}
	defer bb.Close()
	fmt.Fprintf(os.Stderr, "UNet %.3g and DINOv2-base %.3g parameters, built in %.1fs\n",
		float64(u.NumParams()), float64(bb.NumParams()), time.Since(t0).Seconds())

	runs, warm := b.runs, b.warmup
	b.runs, b.warmup = min(runs, 5), 1
	defer func() { b.runs, b.warmup = runs, warm }()
	for _, c := range cases {
		name := fmt.Sprintf("train stage %d %d×%d×%d", c.stage, b.frames, c.h, c.w)
		if c.stage == 2 {
			name += fmt.Sprintf(" k=%d", k)
		}
		if c.variant != "" {
			name += " " + c.variant
		}
		cfg := osv.TrainConfig{Stage: c.stage, SolverSteps: k, Seed: 1, Foreach: c.variant == "foreach",
			GraphDenoisers: c.variant == "graph_denoisers", GraphStep: c.variant == "graph_step"}
		if err := b.trainStage(u, bb, cfg, c.h, c.w, name); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			b.results = append(b.results, Result{Name: name + " (failed: " + firstLine(err.Error()) + ")"})
		}
	}
	return nil
}

func (b *bench) trainStage(u *unet.Model, bb *discriminator.Backbone, cfg osv.TrainConfig, h, w int64, name string) (err error) {
	d, err := discriminator.New(bb, discriminator.DefaultConfig(), 1)
	if err != nil {
		return err
	}
	defer d.Close()
	tr, err := osv.NewTrainer(u, d, cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	g, err := torch.NewGenerator(2)
	if err != nil {
		return err
	}
	defer g.Close()
	s := torch.NewScope()
	defer s.Close()
	draw := func(shape ...int64) *torch.Tensor {
		x, err := g.Randn(s, shape, torch.Float32, b.dev)
		if err != nil {
			torch.Failf("bench", "%v", err)
		}
		return x
	}
	defer torch.Recover(&err)
	ids, err := torch.FromFloat32(s, []float32{6, 127, 0.02}, []int64{1, 3}, torch.Float32, b.dev)
	if err != nil {
		return err
	}
	batch := osv.Batch{
		Latents:      draw(1, b.frames, 4, h/8, w/8),
		ImageLatents: draw(1, 4, h/8, w/8),
		ImageEmbeds:  draw(1, 1, u.Config.CrossAttentionDim[0]),
		AddedTimeIDs: ids,
	}
	var last osv.Metrics
	if err := b.measure(name, func() error {
		m, err := tr.Step(batch)
		last = m
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: last step %+v\n", name, last)
	return nil
}

// trainCase is one training case of the bench.
type trainCase struct {
	stage   int
	h, w    int64
	variant string // "", "foreach", "graph_denoisers" or "graph_step"
}

// trainCaseList is the training cases to run: -train-cases when given,
// else stage 2 and stage 1, then (with -variants) stage 2's variants.
func (b *bench) trainCaseList(stage2H, stage2W int64) ([]trainCase, error) {
	names := []string{"stage2", "stage1"}
	if b.variants {
		names = append(names, "foreach", "graph_denoisers", "graph_step")
	}
	if b.trainCases != "" {
		names = strings.Split(b.trainCases, ",")
	}
	var cases []trainCase
	for _, n := range names {
		switch n = strings.TrimSpace(n); n {
		case "stage2":
			cases = append(cases, trainCase{2, stage2H, stage2W, ""})
		case "stage1":
			cases = append(cases, trainCase{1, b.h, b.w, ""})
		case "foreach", "graph_denoisers", "graph_step":
			cases = append(cases, trainCase{2, stage2H, stage2W, n})
		default:
			return nil, fmt.Errorf("-train-cases: unknown case %q (want stage2, stage1, foreach, graph_denoisers or graph_step)", n)
		}
	}
	return cases, nil
}
