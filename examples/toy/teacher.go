package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// teacherBlocks is the toy teacher's block widths unless -teacher-blocks
// says otherwise: the first (64 channels) wider than the 48-channel
// latent, so that no direction of the noise is invisible to the network.
var teacherBlocks = []int64{64, 64}

// parseWidths reads a flag's two block widths, multiples of 32 (the
// groups of GroupNorm) separated by a comma.
func parseWidths(name, list string) ([]int64, error) {
	var w []int64
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || v < 32 || v%32 != 0 {
			return nil, fmt.Errorf("%s %q: want two multiples of 32 separated by a comma", name, list)
		}
		w = append(w, v)
	}
	if len(w) != len(teacherBlocks) {
		return nil, fmt.Errorf("%s %q: want two multiples of 32 separated by a comma", name, list)
	}
	return w, nil
}

// teacherUNet is the toy teacher's configuration: SVD's UNet code with
// two small levels of the given widths over the 16×16 latent.
func teacherUNet(wc world.Config, blocks []int64) unet.Config {
	return unet.Config{
		SampleSize:                        int64(wc.Size / factor),
		InChannels:                        2 * latentChannel,
		OutChannels:                       latentChannel,
		DownBlockTypes:                    []string{unet.CrossAttnDown, unet.Down},
		UpBlockTypes:                      []string{unet.Up, unet.CrossAttnUp},
		BlockOutChannels:                  slices.Clone(blocks),
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
	Graph        bool // on CUDA, each step recorded once as a CUDA graph and replayed
	DeviceNoise  bool // without Graph: the noise drawn on the device as Graph draws it (to compare the two)
	LR           float64
	PMean, PStd  float64 // ln σ ~ N(PMean, PStd²)
	DropCond     float64 // probability of an unconditional example
	Seed         uint64
	Autocast     bool // the forward pass under bfloat16 autocast (torch.Autocast); the weights stay float32
	// EMA, when set, is updated after every step to an exponential moving
	// average of the weights, EMADecay·EMA + (1 − EMADecay)·weights: the
	// same parameters as the trained UNet's, in the same order.
	EMA      []*torch.Tensor
	EMADecay float64
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
	seed, stream := o.Seed, uint64(1)
	if o.From > 0 {
		// A resumed run draws data and noise of its own, from streams of
		// the step it starts at.
		seed, stream = o.Seed+1_000_003*uint64(o.From), uint64(o.From)+1
	}
	tt, err := newTeacherTrainer(u, wc, o, seed)
	if err != nil {
		return res, err
	}
	defer tt.close()
	if tt.graph {
		fmt.Fprintf(log, "teacher: each step replays one recorded CUDA graph\n")
	}
	feed := newTeacherFeed(wc, o, rand.New(rand.NewPCG(o.Seed, stream)))
	defer feed.close()
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
		lr := o.LR * (0.55 + 0.45*math.Cos(math.Pi*float64(step-1)/float64(o.Steps)))
		l, err := tt.step(feed.next(), lr)
		if err != nil {
			return res, fmt.Errorf("teacher step %d: %w", step, err)
		}
		if o.EMA != nil {
			if err := torch.EMA(o.EMA, tt.params, o.EMADecay); err != nil {
				return res, fmt.Errorf("teacher step %d: %w", step, err)
			}
		}
		res.Reached = step
		if step > o.Steps-max(o.Steps/10, 1) {
			tail += l
			tailN++
		}
		if step%100 == 0 || step == o.Steps {
			fmt.Fprintf(log, "teacher %d/%d loss %.4f lr %.2g %.1fs\n", step, o.Steps, l, lr, time.Since(start).Seconds())
		}
	}
	res.Steps, res.TailSum, res.TailN = o.Steps, tail, tailN
	if tailN > 0 {
		res.Loss = tail / float64(tailN)
	}
	return res, nil
}

// teacherBatch is one step's data, drawn on the host: the clips' pixels
// stacked [B, F, 3, S, S] as bytes (the world's pixels are −1 or 1, stored
// as 0 or 1: a quarter of float32's upload), each example's σ, and whether
// it keeps its image conditioning (1) or drops it (0).
type teacherBatch struct {
	Pixels    []uint8
	Sig, Keep []float32
}

// pixelBytes appends pixels (each −1 or 1) to dst as bytes 0 or 1.
func pixelBytes(dst []uint8, pixels []float32) []uint8 {
	for _, v := range pixels {
		var b uint8
		if v > 0 {
			b = 1
		}
		dst = append(dst, b)
	}
	return dst
}

// drawTeacherBatch draws a step's data from r: the clips, then each
// example's σ and conditioning.
func drawTeacherBatch(wc world.Config, o teacherOptions, r *rand.Rand) teacherBatch {
	per := wc.Frames * 3 * wc.Size * wc.Size
	tb := teacherBatch{Pixels: make([]uint8, 0, o.Batch*per), Sig: make([]float32, o.Batch), Keep: make([]float32, o.Batch)}
	for range o.Batch {
		tb.Pixels = pixelBytes(tb.Pixels, wc.Sample(r).Pixels)
	}
	for i := range tb.Sig {
		tb.Sig[i] = float32(math.Exp(o.PMean + o.PStd*r.NormFloat64()))
		if r.Float64() >= o.DropCond {
			tb.Keep[i] = 1
		}
	}
	return tb
}

// teacherFeed draws the steps' data ahead, on a goroutine of its own, in
// the order the steps take it: the host renders the next clips while the
// device trains on these.
type teacherFeed struct {
	ch   chan teacherBatch
	stop chan struct{}
	done chan struct{}
}

func newTeacherFeed(wc world.Config, o teacherOptions, r *rand.Rand) *teacherFeed {
	f := &teacherFeed{ch: make(chan teacherBatch, 2), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			tb := drawTeacherBatch(wc, o, r)
			select {
			case f.ch <- tb:
			case <-f.stop:
				return
			}
		}
	}()
	return f
}

func (f *teacherFeed) next() teacherBatch { return <-f.ch }

// close stops the goroutine and waits for it.
func (f *teacherFeed) close() {
	close(f.stop)
	<-f.done
}

// teacherInputs uploads a step's data: the batch (latents, conditioning)
// with the conditioning frame's noise from g, σ [B], the keep mask
// [B, 1, 1, 1], then the unit noise eps of the latents' shape from g.
func teacherInputs(s *torch.Scope, wc world.Config, tb teacherBatch, g *torch.Generator, dev torch.Device) (b osv.Batch, sigma, mask, eps *torch.Tensor, err error) {
	n := int64(len(tb.Sig))
	// The bytes go to the device as they are and become ±1 there.
	px, err := torch.FromUint8(s, tb.Pixels, []int64{n, int64(wc.Frames), 3, int64(wc.Size), int64(wc.Size)}, torch.Uint8, dev)
	if err != nil {
		return b, nil, nil, nil, err
	}
	px = s.AddScalar(s.MulScalar(s.Cast(px, torch.Float32), 2), -1)
	if b, err = batchOfPixels(s, px, g, dev); err != nil {
		return b, nil, nil, nil, err
	}
	if sigma, err = torch.FromFloat32(s, tb.Sig, []int64{n}, torch.Float32, dev); err != nil {
		return b, nil, nil, nil, err
	}
	if mask, err = torch.FromFloat32(s, tb.Keep, []int64{n, 1, 1, 1}, torch.Float32, dev); err != nil {
		return b, nil, nil, nil, err
	}
	eps, err = g.Randn(s, b.Latents.Shape(), torch.Float32, dev)
	return b, sigma, mask, eps, err
}

// loss is teacherLoss, under bfloat16 autocast when o asks for it.
func (o teacherOptions) loss(s *torch.Scope, den *unet.Denoiser, b osv.Batch, sigma, mask, eps *torch.Tensor) (l *torch.Tensor, err error) {
	if !o.Autocast {
		return teacherLoss(s, den, b, sigma, mask, eps), nil
	}
	err = torch.Autocast(den.UNet.Device(), torch.BFloat16, func() error {
		l = teacherLoss(s, den, b, sigma, mask, eps)
		return nil
	})
	return l, err
}

// teacherLoss is the EDM objective on one batch: x0 noised by eps at σ,
// denoised with the conditioning kept where mask is 1, and the error
// weighted by λ(σ) = (σ² + σ_d²)/(σ·σ_d)² with σ_d = 1.
func teacherLoss(s *torch.Scope, den *unet.Denoiser, b osv.Batch, sigma, mask, eps *torch.Tensor) *torch.Tensor {
	col := s.Reshape(sigma, -1, 1, 1, 1, 1)
	x0 := b.Latents
	xn := s.Add(x0, s.Mul(eps, col))
	d := den.Apply(s, xn, sigma, unet.Cond{ImageLatents: s.Mul(b.ImageLatents, mask), ImageEmbeds: b.ImageEmbeds, AddedTimeIDs: b.AddedTimeIDs})
	sq := s.Square(col)
	w := s.Div(s.AddScalar(sq, 1), sq)
	return s.Mean(s.Mul(w, s.Square(s.Sub(s.Cast(d, torch.Float32), x0))), false)
}

// teacherTrainer takes the teacher's training steps: one operation at a
// time, or (Graph, on CUDA) as replays of one recorded CUDA graph whose
// inputs are refilled each step. The graph's random numbers come from a
// generator on the device; the eager path's from a CPU generator, so the
// two paths draw different noise from one seed.
type teacherTrainer struct {
	den    *unet.Denoiser
	wc     world.Config
	o      teacherOptions
	dev    torch.Device
	params []*torch.Tensor
	opt    *torch.AdamW
	g      *torch.Generator
	graph  bool
	tg     *teacherGraph
}

func newTeacherTrainer(u *unet.Model, wc world.Config, o teacherOptions, seed uint64) (tt *teacherTrainer, err error) {
	dev := u.Device()
	tt = &teacherTrainer{den: &unet.Denoiser{UNet: u}, wc: wc, o: o, dev: dev, graph: o.Graph && dev.CUDA}
	made := tt // the returns below set tt to nil before this runs
	defer func() {
		if err != nil {
			made.close()
		}
	}()
	tt.params = paramList(u)
	for _, p := range tt.params {
		if err := p.SetRequiresGrad(true); err != nil {
			return nil, err
		}
	}
	if tt.opt, err = torch.NewAdamW(tt.params, o.LR, 0.9, 0.999, 1e-8, 0); err != nil {
		return nil, err
	}
	tt.opt.Foreach = o.Foreach
	tt.opt.Capturable = tt.graph
	if tt.graph || o.DeviceNoise {
		tt.g, err = torch.NewDeviceGenerator(seed, dev)
	} else {
		tt.g, err = torch.NewGenerator(seed)
	}
	return tt, err
}

// step takes one step on tb at learning rate lr and returns its loss.
func (tt *teacherTrainer) step(tb teacherBatch, lr float64) (float64, error) {
	if !tt.graph {
		if err := tt.opt.SetLR(lr); err != nil {
			return 0, err
		}
		return teacherStep(tt.den, tt.wc, tt.o, tb, tt.g, tt.dev, tt.params, tt.opt)
	}
	if err := tt.opt.SetLR(lr); err != nil {
		return 0, err
	}
	if tt.tg == nil {
		tg, l, err := newTeacherGraph(tt, tb)
		if err != nil {
			return 0, err
		}
		tt.tg = tg
		return l, nil
	}
	return tt.tg.step(tt, tb)
}

// close releases the graph, the optimiser and the generator, and leaves
// the parameters frozen without gradients.
func (tt *teacherTrainer) close() {
	if tt == nil {
		return
	}
	tt.tg.close()
	for _, p := range tt.params {
		p.SetRequiresGrad(false)
		p.ZeroGrad()
	}
	if tt.opt != nil {
		tt.opt.Close()
	}
	tt.g.Close()
}

// teacherGraph is the teacher's step recorded as a CUDA graph over inputs
// of its own.
type teacherGraph struct {
	inputs     *torch.Scope
	batch      osv.Batch
	sigma      *torch.Tensor
	mask, eps  *torch.Tensor
	loss, norm *torch.Tensor // the recorded step's outputs
	graph      *torch.Graph
}

// newTeacherGraph fills the inputs from tb, takes that step as the
// recording's warmup (its loss is returned), and records it.
func newTeacherGraph(tt *teacherTrainer, tb teacherBatch) (tg *teacherGraph, warm float64, err error) {
	tg = &teacherGraph{inputs: torch.NewScope()}
	defer func() {
		if err != nil {
			tg.close()
		}
	}()
	s := torch.NewScope()
	b, sigma, mask, eps, err := teacherInputs(s, tt.wc, tb, tt.g, tt.dev)
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	in := tg.inputs
	tg.batch = osv.Batch{Latents: in.Clone(b.Latents), ImageLatents: in.Clone(b.ImageLatents), ImageEmbeds: in.Clone(b.ImageEmbeds), AddedTimeIDs: in.Clone(b.AddedTimeIDs)}
	tg.sigma, tg.mask, tg.eps = in.Clone(sigma), in.Clone(mask), in.Clone(eps)
	s.Close()
	calls := 0
	tg.graph, err = torch.CaptureGraph(tt.dev, 1, func(s *torch.Scope) error {
		calls++
		loss, err := tt.o.loss(s, tt.den, tg.batch, tg.sigma, tg.mask, tg.eps)
		if err != nil {
			return err
		}
		if err := torch.ZeroGrads(tt.params); err != nil {
			return err
		}
		if err := torch.Backward(loss); err != nil {
			return err
		}
		norm, err := torch.ClipGradNormDevice(s, tt.params, 1)
		if err != nil {
			return err
		}
		tt.opt.SkipUnlessFinite = norm
		if err := tt.opt.Step(); err != nil {
			return err
		}
		if calls == 1 { // the warmup, a step of its own: read it here
			warm, err = readStep(loss, norm)
			return err
		}
		tg.loss, tg.norm = loss, norm
		return nil
	})
	return tg, warm, err
}

// step refills the inputs from tb (with fresh noise) and replays.
func (tg *teacherGraph) step(tt *teacherTrainer, tb teacherBatch) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	b, sigma, mask, eps, err := teacherInputs(s, tt.wc, tb, tt.g, tt.dev)
	if err != nil {
		return 0, err
	}
	for _, p := range [][2]*torch.Tensor{{tg.batch.Latents, b.Latents}, {tg.batch.ImageLatents, b.ImageLatents},
		{tg.sigma, sigma}, {tg.mask, mask}, {tg.eps, eps}} {
		if err := torch.CopyInto(p[0], p[1]); err != nil {
			return 0, err
		}
	}
	if err := tg.graph.Replay(); err != nil {
		return 0, err
	}
	return readStep(tg.loss, tg.norm)
}

// readStep reads a step's loss and gradient norm back, and refuses a
// non-finite one (the optimiser skipped that update).
func readStep(loss, norm *torch.Tensor) (float64, error) {
	l, err := loss.Item()
	if err != nil {
		return 0, err
	}
	n, err := norm.Item()
	if err != nil {
		return 0, err
	}
	if !torch.Finite(n) || !torch.Finite(l) {
		return 0, fmt.Errorf("non-finite loss %g or gradient norm %g", l, n)
	}
	return l, nil
}

func (tg *teacherGraph) close() {
	if tg == nil {
		return
	}
	tg.graph.Close()
	tg.inputs.Close()
}

func teacherStep(den *unet.Denoiser, wc world.Config, o teacherOptions, tb teacherBatch, g *torch.Generator,
	dev torch.Device, params []*torch.Tensor, opt *torch.AdamW) (float64, error) {
	s := torch.NewScope()
	defer s.Close()
	b, sigma, mask, eps, err := teacherInputs(s, wc, tb, g, dev)
	if err != nil {
		return 0, err
	}
	loss, err := o.loss(s, den, b, sigma, mask, eps)
	if err != nil {
		return 0, err
	}
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
