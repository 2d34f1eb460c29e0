// Command recipe distils an SVD UNet with a recipe of its own, composed
// from osv-go's public packages alone (it is a separate module, so it can
// reach nothing else): plain consistency distillation, without a
// discriminator, with a k-step guided teacher solver (k = 3), an L2
// distance instead of OSV's pseudo-Huber, and its own EMA decay and σ
// grid. Its data set is one clip of random latents and conditioning shaped
// as the UNet's config asks; the steps cycle through the grid's levels and
// print their loss. Then it samples the student with
// osv.ConsistencySampler on the same grid.
//
//	go run . -unet ../../testdata/svd-tiny/pipeline/unet -steps 6
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"

	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// recipe is the custom distillation: its hyperparameters, the models and
// their optimiser.
type recipe struct {
	k        int     // teacher Euler steps per target
	decay    float64 // μ of θ⁻
	guidance []float64
	grid     osv.ConsistencySchedule
	sigmas   []float64 // the training grid, decreasing

	teacher *osv.Teacher
	student *osv.Student
	ema     *osv.EMA
	opt     *torch.AdamW
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "recipe:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("recipe", flag.ContinueOnError)
	unetDir := fs.String("unet", "../../testdata/svd-tiny/pipeline/unet", "a diffusers UNet folder (the teacher)")
	device := fs.String("device", "cpu", "cpu or cuda[:n]")
	steps := fs.Int("steps", 6, "training steps")
	k := fs.Int("k", 3, "teacher solver steps per target")
	decay := fs.Float64("ema", 0.8, "EMA decay μ of the target θ⁻")
	lr := fs.Float64("lr", 5e-3, "AdamW learning rate")
	rank := fs.Int64("rank", 8, "LoRA rank")
	batch := fs.Int64("batch", 1, "clips per step")
	fresh := fs.Bool("fresh-noise", false, "draw new noise every step (otherwise one draw serves the whole run)")
	targets := fs.String("targets", strings.Join(lora.DefaultTargets, ","), "LoRA target module suffixes, comma-separated")
	levels := fs.Int("levels", 6, "levels of the training grid")
	sigmaMax := fs.Float64("sigma-max", 20, "largest σ of the training grid")
	sampleSteps := fs.Int("sample-steps", 2, "consistency sampling steps")
	seed := fs.Uint64("seed", 1, "seed of the adapters, the data and the noise")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *steps < 1 || *batch < 1 {
		return fmt.Errorf("-steps %d, -batch %d: want at least 1", *steps, *batch)
	}
	// One OS thread builds and back-propagates every graph: libtorch then
	// orders the backward the same way each run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	u, err := unet.Load(*unetDir, unet.WithDevice(*device))
	if err != nil {
		return err
	}
	defer u.Close()

	r := &recipe{k: *k, decay: *decay,
		grid: osv.ConsistencySchedule{Levels: *levels, SigmaMin: 0.002, SigmaMax: *sigmaMax, Rho: 7}}
	if err := r.grid.Validate(); err != nil {
		return err
	}
	if r.k < 1 || r.k >= r.grid.Levels {
		return fmt.Errorf("-k %d: want 1 to %d", r.k, r.grid.Levels-1)
	}
	r.sigmas = solver.TrainingSigmas(r.grid.Levels, r.grid.SigmaMin, r.grid.SigmaMax, r.grid.Rho)
	r.guidance = solver.FrameGuidance(1, 2.5, int(u.Config.NumFrames))
	if r.teacher, err = osv.NewTeacher(u); err != nil {
		return err
	}
	lc := lora.DefaultConfig(*rank)
	lc.TargetModules = strings.Split(*targets, ",")
	if r.student, err = osv.NewStudent(r.teacher, lc, *seed); err != nil {
		return err
	}
	defer r.student.Close()
	if r.ema, err = osv.NewEMA(r.student); err != nil {
		return err
	}
	defer r.ema.Close()
	if r.opt, err = torch.NewAdamW(r.student.Trainable(), *lr, 0.9, 0.999, 1e-8, 0); err != nil {
		return err
	}
	defer r.opt.Close()

	gen, err := torch.NewGenerator(*seed)
	if err != nil {
		return err
	}
	defer gen.Close()
	data := torch.NewScope()
	defer data.Close()
	x0, cond, err := randomClips(data, u, *batch, gen)
	if err != nil {
		return err
	}
	fixed, err := gen.Randn(data, x0.Shape(), torch.Float32, x0.Device())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "teacher %s: %d frames of %v latents; student LoRA rank %d (%d tensors); k %d, EMA %g, %d-level grid up to σ %g\n",
		*unetDir, u.Config.NumFrames, x0.Shape()[2:], *rank, len(r.student.Trainable()), r.k, r.decay, r.grid.Levels, r.grid.SigmaMax)
	// Step i takes grid index n = (i − 1) mod (levels − k): each cycle
	// visits every index once, and with the one noise draw the mean losses
	// of successive cycles compare.
	var live int64
	for i := 1; i <= *steps; i++ {
		n := (i - 1) % (len(r.sigmas) - r.k)
		ns := torch.NewScope()
		eps := fixed
		if *fresh {
			if eps, err = gen.Randn(ns, x0.Shape(), torch.Float32, x0.Device()); err != nil {
				ns.Close()
				return err
			}
		}
		l, err := r.step(x0, eps, cond, n)
		ns.Close()
		if err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		fmt.Fprintf(out, "step %d sigma %.4g loss %.6g\n", i, r.sigmas[n], l)
		// Every intermediate of a step lives in its scope: from the second
		// step on (AdamW makes its moments at the first), nothing is left.
		if i == 1 {
			live = torch.Live()
		} else if torch.Live() != live {
			return fmt.Errorf("step %d left %d native tensors", i, torch.Live()-live)
		}
	}
	return r.sample(out, x0, cond, *sampleSteps, gen)
}

// randomClips are b clips of random clean latents [b, F, C, h, w] and
// conditioning of the shapes the UNet's config asks for, owned by s.
func randomClips(s *torch.Scope, u *unet.Model, b int64, g *torch.Generator) (*torch.Tensor, osv.Cond, error) {
	c := u.Config
	if c.AdditionTimeEmbedDim == 0 || c.ProjectionClassEmbeddingsInputDim != 3*c.AdditionTimeEmbedDim {
		return nil, osv.Cond{}, fmt.Errorf("the UNet does not take SVD's three added time ids")
	}
	h := c.SampleSize
	x0, err := g.Randn(s, []int64{b, c.NumFrames, c.OutChannels, h, h}, torch.Float32, u.Device())
	if err != nil {
		return nil, osv.Cond{}, err
	}
	z, err := g.Randn(s, []int64{b, c.InChannels - c.OutChannels, h, h}, torch.Float32, u.Device())
	if err != nil {
		return nil, osv.Cond{}, err
	}
	emb, err := g.Randn(s, []int64{b, 1, c.CrossAttentionDim[0]}, torch.Float32, u.Device())
	if err != nil {
		return nil, osv.Cond{}, err
	}
	// fps − 1, motion bucket, noise augmentation strength.
	var v []float32
	for range b {
		v = append(v, 6, 127, 0.02)
	}
	ids, err := torch.FromFloat32(s, v, []int64{b, 3}, torch.Float32, u.Device())
	if err != nil {
		return nil, osv.Cond{}, err
	}
	return x0, osv.Cond{ImageLatents: z, ImageEmbeds: emb, AddedTimeIDs: ids}, nil
}

// step is one update at grid index n:
//
//	x_n = x0 + σ_n·ε,  x̂_{n+k} = k guided Euler steps of the teacher,
//	L = mean (f_θ(x_n, σ_n) − f_θ⁻(x̂_{n+k}, σ_{n+k}))²,
//
// an AdamW step of the adapters, then θ⁻ ← μ·θ⁻ + (1 − μ)·θ.
func (r *recipe) step(x0, eps *torch.Tensor, cond osv.Cond, n int) (loss float64, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	levels := r.sigmas[n : n+r.k+1]
	xn := s.Add(x0, s.MulScalar(eps, levels[0]))
	sol, _ := solver.TeacherSolve(s, r.teacher.Denoiser(cond), xn, levels, r.guidance)
	sigma := func(v float64) *torch.Tensor { return s.Filled(x0, v, x0.Size(0)) }
	target := s.Detach(solver.Consistency(s, r.ema.Denoiser(cond), s.Detach(sol), sigma(levels[r.k]), solver.ConsistencyOptions{}))
	fake := solver.Consistency(s, r.student.Denoiser(cond), xn, sigma(levels[0]), solver.ConsistencyOptions{})
	l := s.Mean(s.Square(s.Sub(fake, target)), false)
	if loss, err = l.Item(); err != nil {
		return 0, err
	}
	params := r.student.Trainable()
	if err := torch.ZeroGrads(params); err != nil {
		return 0, err
	}
	if err := torch.Backward(l); err != nil {
		return 0, err
	}
	norm, err := torch.ClipGradNorm(params, 1)
	if err != nil {
		return 0, err
	}
	if !torch.Finite(norm) {
		return 0, fmt.Errorf("gradient norm %g", norm)
	}
	if err := r.opt.Step(); err != nil {
		return 0, err
	}
	return loss, r.ema.Update(r.student, r.decay)
}

// sample draws a clip from the student (no guidance) by multistep
// consistency sampling on the recipe's grid and prints its statistics.
func (r *recipe) sample(out io.Writer, x0 *torch.Tensor, cond osv.Cond, steps int, g *torch.Generator) (err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	noise, err := g.Randn(s, x0.Shape(), torch.Float32, x0.Device())
	if err != nil {
		return err
	}
	sampler := osv.ConsistencySampler{Schedule: r.grid}
	x := sampler.Sample(s, r.student.Denoiser(cond), noise, osv.SampleRun{Steps: steps, Generator: g})
	v, err := x.Float32s()
	if err != nil {
		return err
	}
	var sum, sq float64
	for _, f := range v {
		sum += float64(f)
		sq += float64(f) * float64(f)
	}
	mean := sum / float64(len(v))
	std := math.Sqrt(max(sq/float64(len(v))-mean*mean, 0))
	if !torch.Finite(mean) || !torch.Finite(std) {
		return fmt.Errorf("the sample is not finite")
	}
	fmt.Fprintf(out, "sampled %v latents in %d steps: mean %.4g, std %.4g\n", x.Shape(), steps, mean, std)
	return nil
}
