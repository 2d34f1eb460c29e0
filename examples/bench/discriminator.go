package main

import (
	"fmt"
	"os"
	"time"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/torch"
)

// discriminator times OSV's discriminator forward and backward on a
// latent video with a DINOv2-base backbone (random weights): through the
// latent upsampler, and through the VAE decoder (the ablation), with the
// gradient reaching the latents in both.
func (b *bench) discriminator() error {
	t0 := time.Now()
	dev, dt := b.dev.String(), b.dt.String()
	bcfg := discriminator.DefaultBackboneConfig()
	bcfg.ImageSize = 518 // dinov2-base's position grid (37×37)
	bb, err := discriminator.NewBackbone(bcfg, discriminator.WithDevice(dev), discriminator.WithDType(dt))
	if err != nil {
		return err
	}
	defer bb.Close()
	latent, err := discriminator.New(bb, discriminator.DefaultConfig(), 1)
	if err != nil {
		return err
	}
	defer latent.Close()
	pcfg := discriminator.DefaultConfig()
	pcfg.PixelInput = true
	pixel, err := discriminator.New(bb, pcfg, 1)
	if err != nil {
		return err
	}
	defer pixel.Close()
	v, err := vae.New(vae.DefaultConfig(), vae.WithDevice(dev), vae.WithDType(dt))
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Fprintf(os.Stderr, "DINOv2-base %.3g parameters, built in %.1fs\n", float64(bb.NumParams()), time.Since(t0).Seconds())
	latent.SetTraining(true)
	pixel.SetTraining(true)

	g, err := torch.NewGenerator(3)
	if err != nil {
		return err
	}
	defer g.Close()
	z, err := g.Randn(nil, []int64{1, b.frames, 4, b.h / 8, b.w / 8}, torch.Float32, b.dev)
	if err != nil {
		return err
	}
	defer z.Free()
	if err := z.SetRequiresGrad(true); err != nil {
		return err
	}
	step := func(d *discriminator.Discriminator, logits func(c *torch.Scope) []*torch.Tensor) func() error {
		return func() error {
			err := scoped(func(c *torch.Scope) {
				var total *torch.Tensor
				for _, l := range logits(c) {
					m := c.Mean(l, false)
					if total == nil {
						total = m
					} else {
						total = c.Add(total, m)
					}
				}
				if err := torch.Backward(total); err != nil {
					torch.Failf("backward", "%v", err)
				}
			})
			for _, p := range d.Trainable() {
				p.T.ZeroGrad()
			}
			z.ZeroGrad()
			return err
		}
	}
	runs, warm := b.runs, b.warmup
	b.runs, b.warmup = min(runs, 5), 1
	defer func() { b.runs, b.warmup = runs, warm }()
	cases := []struct {
		name string
		fn   func() error
	}{
		{"disc fwd+bwd latent", step(latent, func(c *torch.Scope) []*torch.Tensor { return latent.Apply(c, z) })},
		{"disc fwd+bwd vae-decoded", step(pixel, func(c *torch.Scope) []*torch.Tensor {
			zs := c.Reshape(c.MulScalar(z, 1/v.Config.ScalingFactor), b.frames, 4, b.h/8, b.w/8)
			px := v.DecodeApply(c, c.Cast(zs, b.dt), int(b.frames), int(b.frames))
			return pixel.ApplyPixels(c, px, b.frames)
		})},
	}
	for _, cs := range cases {
		// A case that fails (out of memory, say) is recorded and the next runs.
		if err := b.measure(cs.name, cs.fn); err != nil {
			return err
		}
	}
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	if len(s) > 120 {
		return s[:120]
	}
	return s
}
