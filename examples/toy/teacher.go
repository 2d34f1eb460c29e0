package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// teacherUNet is the toy teacher's configuration: SVD's UNet code with
// two small levels over the 16×16 latent, the first (64 channels) wider
// than the 48-channel latent, so that no direction of the noise is
// invisible to the network.
func teacherUNet(wc world.Config) unet.Config {
	return unet.Config{
		SampleSize:                        int64(wc.Size / factor),
		InChannels:                        2 * latentChannel,
		OutChannels:                       latentChannel,
		DownBlockTypes:                    []string{unet.CrossAttnDown, unet.Down},
		UpBlockTypes:                      []string{unet.Up, unet.CrossAttnUp},
		BlockOutChannels:                  []int64{64, 64},
		AdditionTimeEmbedDim:              32,
		ProjectionClassEmbeddingsInputDim: 96,
		LayersPerBlock:                    unet.IntOrList{1},
		CrossAttentionDim:                 unet.IntOrList{embedDim},
		TransformerLayersPerBlock:         unet.IntOrList{1},
		NumAttentionHeads:                 unet.IntOrList{2},
		NumFrames:                         int64(wc.Frames),
	}
}

// teacherOptions is the teacher's training recipe: the EDM objective
// with SVD's preconditioning (unet.Denoiser), log-normal σ, and the
// image conditioning dropped at random so that guidance works.
type teacherOptions struct {
	Steps, Batch int
	Wall         time.Duration // when > 0 (and From is 0), Steps is set from the speed of the first 20 steps to fill it
	From         int           // steps already taken (a resumed run); the data and noise continue from there
	Budget       time.Duration // when > 0, stop after this long, even before Steps
	TailSum      float64       // the loss summed over the last tenth's steps taken before From
	TailN        int
	Foreach      bool // the optimiser and the gradient clip over all parameters at once
	LR           float64
	PMean, PStd  float64 // ln σ ~ N(PMean, PStd²)
	DropCond     float64 // probability of an unconditional example
	Seed         uint64
}

// teacherResult is what the teacher's training measured.
type teacherResult struct {
	Loss    float64 // averaged over the last tenth of the steps
	Steps   int     // the total steps planned
	Reached int     // the steps taken, this run's and earlier runs'
	TailSum float64 // for resuming: the tail's loss sum and count so far
	TailN   int
}

// done reports whether the training reached its planned steps.
func (r teacherResult) done() bool { return r.Reached >= r.Steps }

// trainTeacher trains every weight of u from its random initialisation
// on fresh clips of the world, then freezes it.
func trainTeacher(ctx context.Context, u *unet.Model, wc world.Config, o teacherOptions, log io.Writer) (res teacherResult, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer torch.Recover(&err)
	var params []*torch.Tensor
	for _, p := range u.Params().List() {
		if err := p.T.SetRequiresGrad(true); err != nil {
			return res, err
		}
		params = append(params, p.T)
	}
	defer func() {
		for _, p := range params {
			p.SetRequiresGrad(false)
			p.ZeroGrad()
		}
	}()
	opt, err := torch.NewAdamW(params, o.LR, 0.9, 0.999, 1e-8, 0)
	if err != nil {
		return res, err
	}
	opt.Foreach = o.Foreach
	defer opt.Close()
	g, err := torch.NewGenerator(o.Seed)
	if err != nil {
		return res, err
	}
	defer func() { g.Close() }() // g is replaced when resuming
	r := rand.New(rand.NewPCG(o.Seed, 1))
	if o.From > 0 {
		// A resumed run draws data and noise of its own, from streams of
		// the step it starts at.
		r = rand.New(rand.NewPCG(o.Seed, uint64(o.From)+1))
		g.Close()
		if g, err = torch.NewGenerator(o.Seed + 1_000_003*uint64(o.From)); err != nil {
			return res, err
		}
	}
	den := &unet.Denoiser{UNet: u}
	dev := u.Device()
	start := time.Now()
	tail, tailN := o.TailSum, o.TailN
	const probe = 20
	res.Reached = o.From
	for step := o.From + 1; step <= o.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if o.Budget > 0 && step > o.From+1 && time.Since(start) >= o.Budget {
			break // every command takes at least one step
		}
		if o.Wall > 0 && o.From == 0 && step == probe+1 {
			if dev.CUDA {
				torch.Synchronize(dev)
			}
			rate := probe / time.Since(start).Seconds()
			o.Steps = max(step, int(rate*o.Wall.Seconds()))
			fmt.Fprintf(log, "teacher: %.2f steps/s over the first %d steps: %d steps fill %s\n", rate, probe, o.Steps, o.Wall)
		}
		// Cosine decay of the learning rate to a tenth.
		opt.LR = o.LR * (0.55 + 0.45*math.Cos(math.Pi*float64(step-1)/float64(o.Steps)))
		l, err := teacherStep(u, den, wc, o, r, g, dev, params, opt)
		if err != nil {
			return res, fmt.Errorf("teacher step %d: %w", step, err)
		}
		res.Reached = step
		if step > o.Steps-max(o.Steps/10, 1) {
			tail += l
			tailN++
		}
		if step%100 == 0 || step == o.Steps {
			fmt.Fprintf(log, "teacher %d/%d loss %.4f lr %.2g %.1fs\n", step, o.Steps, l, opt.LR, time.Since(start).Seconds())
		}
	}
	res.Steps, res.TailSum, res.TailN = o.Steps, tail, tailN
	if tailN > 0 {
		res.Loss = tail / float64(tailN)
	}
	return res, nil
}

func teacherStep(u *unet.Model, den *unet.Denoiser, wc world.Config, o teacherOptions, r *rand.Rand, g *torch.Generator,
	dev torch.Device, params []*torch.Tensor, opt *torch.AdamW) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	clips := make([]world.Clip, o.Batch)
	for i := range clips {
		clips[i] = wc.Sample(r)
	}
	b, err := batchOf(s, wc, clips, g, dev)
	if err != nil {
		return 0, err
	}
	sig := make([]float32, o.Batch)
	keep := make([]float32, o.Batch)
	for i := range sig {
		sig[i] = float32(math.Exp(o.PMean + o.PStd*r.NormFloat64()))
		if r.Float64() >= o.DropCond {
			keep[i] = 1
		}
	}
	sigma, err := torch.FromFloat32(s, sig, []int64{int64(o.Batch)}, torch.Float32, dev)
	if err != nil {
		return 0, err
	}
	mask, err := torch.FromFloat32(s, keep, []int64{int64(o.Batch), 1, 1, 1}, torch.Float32, dev)
	if err != nil {
		return 0, err
	}
	eps, err := g.Randn(s, b.Latents.Shape(), torch.Float32, dev)
	if err != nil {
		return 0, err
	}
	col := s.Reshape(sigma, -1, 1, 1, 1, 1)
	x0 := b.Latents
	xn := s.Add(x0, s.Mul(eps, col))
	d := den.Apply(s, xn, sigma, unet.Cond{ImageLatents: s.Mul(b.ImageLatents, mask), ImageEmbeds: b.ImageEmbeds, AddedTimeIDs: b.AddedTimeIDs})
	// EDM's weight λ(σ) = (σ² + σ_d²)/(σ·σ_d)² with σ_d = 1.
	sq := s.Square(col)
	w := s.Div(s.AddScalar(sq, 1), sq)
	loss := s.Mean(s.Mul(w, s.Square(s.Sub(s.Cast(d, torch.Float32), x0))), false)
	if err := torch.ZeroGrads(params); err != nil {
		return 0, err
	}
	if err := torch.Backward(loss); err != nil {
		return 0, err
	}
	clip := torch.ClipGradNorm
	if o.Foreach {
		clip = torch.ClipGradNormForeach
	}
	n, err := clip(params, 1)
	if err != nil {
		return 0, err
	}
	l, err := loss.Item()
	if err != nil {
		return 0, err
	}
	if !torch.Finite(n) || !torch.Finite(l) {
		return 0, fmt.Errorf("non-finite loss %g or gradient norm %g", l, n)
	}
	return l, opt.Step()
}
