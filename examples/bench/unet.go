package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// unet times SVD's UNet forward at each batch size (and, with variants,
// under the alternative kernels).
func (b *bench) unet(batches string, variants bool) error {
	t0 := time.Now()
	m, err := unet.New(unet.DefaultConfig(), unet.WithDevice(b.dev.String()), unet.WithDType(b.dt.String()))
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(os.Stderr, "SVD UNet: %.3g parameters, %s on %s, built in %.1fs\n", float64(m.NumParams()), b.dt, b.dev, time.Since(t0).Seconds())
	type variant struct {
		name      string
		gn        torch.GroupNormMode
		shortAttn int64
		unfused   bool
		nchw      bool
		graph     bool // the forward recorded once as a CUDA graph and replayed
		fusedLN   bool // LayerNorm as the bridge's kernel (torch.SetFusedLayerNorm)
	}
	base := variant{gn: torch.GroupNormSplitCUDA}
	with := func(name string, edit func(*variant)) variant { v := base; v.name = name; edit(&v); return v }
	vs := []variant{base}
	if variants {
		vs = append(vs,
			with(" [nchw]", func(v *variant) { v.nchw = true }),
			with(" [nchw, unfused]", func(v *variant) { v.nchw, v.unfused = true, true }),
			with(" [nchw, unfused, native gn]", func(v *variant) { v.nchw, v.unfused, v.gn = true, true, torch.GroupNormNative }),
			with(" [math attn ≤32]", func(v *variant) { v.shortAttn = 32 }),
			with(" [graph]", func(v *variant) { v.graph = true }),
			with(" [fused ln]", func(v *variant) { v.fusedLN = true }),
			with(" [fused ln, graph]", func(v *variant) { v.fusedLN, v.graph = true, true }))
	}
	defer torch.SetLayoutMode(torch.LayoutChannelsLastCUDA)
	defer torch.SetGroupNormMode(torch.GroupNormSplitCUDA)
	defer torch.SetShortAttention(0)
	defer torch.SetFusedKernels(true)
	defer torch.SetFusedLayerNorm(false)
	for _, v := range vs {
		if err := torch.SetFusedLayerNorm(v.fusedLN); err != nil {
			return err
		}
		if err := torch.SetGroupNormMode(v.gn); err != nil {
			return err
		}
		if err := torch.SetFusedKernels(!v.unfused); err != nil {
			return err
		}
		torch.SetLayoutMode(torch.LayoutChannelsLastCUDA)
		if v.nchw {
			torch.SetLayoutMode(torch.LayoutContiguous)
		}
		if err := torch.SetShortAttention(v.shortAttn); err != nil {
			return err
		}
		for _, bs := range strings.Split(batches, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(bs), 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("bad batch size %q", bs)
			}
			if err := b.unetForward(m, n, v.name, v.graph); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bench) unetForward(m *unet.Model, n int64, suffix string, graph bool) error {
	g, err := torch.NewGenerator(1)
	if err != nil {
		return err
	}
	defer g.Close()
	s := torch.NewScope()
	defer s.Close()
	cfg := m.Config
	sample, err := g.Randn(s, []int64{n, b.frames, cfg.InChannels, b.h / 8, b.w / 8}, b.dt, b.dev)
	if err != nil {
		return err
	}
	ctx, err := g.Randn(s, []int64{n, 1, cfg.CrossAttentionDim.At(0)}, b.dt, b.dev)
	if err != nil {
		return err
	}
	t, err := torch.Full(s, []int64{n}, 0.5, torch.Float32, b.dev) // c_noise = ¼·ln σ at σ = e²
	if err != nil {
		return err
	}
	ids, err := torch.Full(s, []int64{n, cfg.NumTimeIDs()}, 6, torch.Float32, b.dev)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("unet forward b%d", n) + suffix
	if graph && !b.skipped(name) {
		g, err := torch.CaptureGraph(b.dev, 1, func(c *torch.Scope) error {
			m.Apply(c, sample, t, ctx, ids)
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer g.Close()
		return b.measure(name, g.Replay)
	}
	return b.measure(name, func() error {
		return scoped(func(c *torch.Scope) { m.Apply(c, sample, t, ctx, ids) })
	})
}
