package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// backboneConfig is the toy discriminator's DINOv2-style backbone: the
// same code as DINOv2, four layers of width 96 on 8×8 patches of the
// 64×64 frames, randomly initialised and frozen. There is no pretrained
// DINOv2 of this size, so its features are random projections: the
// trainable upsampler and heads do all the learning.
func backboneConfig(wc world.Config) discriminator.BackboneConfig {
	c := discriminator.DefaultBackboneConfig()
	c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads = 96, 4, 4
	c.ImageSize, c.PatchSize = int64(wc.Size), 8
	return c
}

// distillOptions are shared by every OSV run.
type distillOptions struct {
	Batch       int
	Rank        int64
	LR, DiscLR  float64
	MaxGuidance float64
	Seed        uint64
	Device      string
	Graphs      bool // stage 2 on CUDA: the teacher's and θ⁻'s calls replay CUDA graphs (osv.TrainConfig.GraphDenoisers)
	Foreach     bool // the optimisers and clips over all tensors at once (osv.TrainConfig.Foreach)
	Record1     bool // stage 1 on CUDA: the whole step recorded once as a CUDA graph (osv.TrainConfig.GraphStep)
	Record      bool // stage 2 on CUDA: the whole step recorded once as a CUDA graph (osv.TrainConfig.GraphStep; Graphs then applies only to the pixel discriminator's stage 2, which is not recorded)
}

// stageRun is one stage of one run.
type stageRun struct {
	Stage      int
	Steps      int           // steps to take (when Wall is 0)
	Wall       time.Duration // otherwise: take steps until this much time has passed
	K          int
	NoAdv      bool
	PixelDisc  bool
	Init       string // a checkpoint to start from (stage 1 → 2, or the same stage)
	Checkpoint string // where to save at the end
	Progress   string // where a stopped stage keeps its progress, and resumes from (progress.go); empty: it starts again
	// UntilDone, when set, names another run's result file: take steps
	// until it appears (the two runs started together share the wall
	// time and the machine), or for its recorded last stage's wall time
	// when it exists already; Steps, when > 0, caps the steps.
	UntilDone        string
	DiscReal         string  // osv.TrainConfig.DiscReal
	DiscRealMaxSigma float64 // osv.TrainConfig.DiscRealMaxSigma
	LambdaAdv        float64 // osv.TrainConfig.LambdaAdv; 0: its default
	DiscLR           float64 // the discriminator's learning rate; 0: the experiment's
	// Watch, when set, is called every WatchEvery steps with the student
	// (its adapters active) and returns its FD on the validation clips;
	// the adapters of the lowest reading are saved to Best. Its time is
	// not counted as training time.
	Watch      func(u *unet.Model) (float64, error)
	WatchEvery int
	Best       string
	// Average, when above 0, keeps the moving average of the student's
	// adapters, avg ← Average·avg + (1 − Average)·θ after each step,
	// starting at the stage's first adapters (stage 2's θ⁻ is a moving
	// average too, but one the loss reads, at OSV's 0.95; this one only
	// samples). It is saved with the progress, and at the end as an
	// adapter folder in AverageDir.
	Average    float64
	AverageDir string
}

// watchPoint is one reading of the validation FD during a stage.
type watchPoint struct {
	Step int
	FD   float64
}

// bestOf is the step of the lowest reading (0 when there is none).
func bestOf(ws []watchPoint) (step int, fd float64) {
	for _, w := range ws {
		if step == 0 || w.FD < fd {
			step, fd = w.Step, w.FD
		}
	}
	return step, fd
}

// stageResult is what a stage measured.
type stageResult struct {
	Steps   int
	Wall    time.Duration
	PeakGiB float64
	Last    osv.Metrics
	Started time.Time    // when its first command started training it
	Watched []watchPoint // the validation's readings (stageRun.Watch)
	Best    int          // the step of the lowest reading, whose adapters are in stageRun.Best (0: none)
}

// student is a distilled model ready for sampling: the teacher's weights
// with the trainer's LoRA adapters active.
type student struct {
	UNet    *unet.Model
	trainer *osv.Trainer
	disc    *discriminator.Discriminator
	bb      *discriminator.Backbone
}

func (s *student) Close() {
	s.trainer.Close()
	s.disc.Close()
	s.bb.Close()
	s.UNet.Close()
}

// runStage loads the teacher, trains one stage on fresh clips and returns
// the student (adapters active) with the stage's measurements.
func runStage(ctx context.Context, teacherDir string, wc world.Config, st stageRun, o distillOptions, log io.Writer) (*student, stageResult, error) {
	var res stageResult
	u, err := unet.Load(teacherDir, unet.WithDevice(o.Device))
	if err != nil {
		return nil, res, err
	}
	out := &student{UNet: u}
	fail := func(err error) (*student, stageResult, error) {
		if out.trainer != nil {
			out.trainer.Close()
		}
		if out.disc != nil {
			out.disc.Close()
		}
		if out.bb != nil {
			out.bb.Close()
		}
		u.Close()
		return nil, res, err
	}
	if out.bb, err = discriminator.NewBackbone(backboneConfig(wc), discriminator.WithDevice(o.Device), discriminator.WithSeed(o.Seed)); err != nil {
		return fail(err)
	}
	dc := discriminator.DefaultConfig()
	dc.LatentChannels, dc.UpsampleFactor, dc.PixelInput = latentChannel, factor, st.PixelDisc
	if out.disc, err = discriminator.New(out.bb, dc, o.Seed); err != nil {
		return fail(err)
	}
	// osv.TrainConfig.GraphStep does not record a step whose discriminator
	// reads pixels: the pixel ablation's stage 2 runs eagerly, its frozen
	// calls replayed from graphs when Graphs is set.
	cuda := strings.HasPrefix(o.Device, "cuda")
	cuda2 := st.Stage == 2 && cuda
	record := !st.PixelDisc && (o.Record && cuda2 || o.Record1 && st.Stage == 1 && cuda)
	discLR := o.DiscLR
	if st.DiscLR > 0 {
		discLR = st.DiscLR
	}
	cfg := osv.TrainConfig{
		Stage: st.Stage, LoRARank: o.Rank, LR: o.LR, DiscLR: discLR, SolverSteps: st.K, LambdaAdv: st.LambdaAdv,
		MinGuidance: 1, MaxGuidance: o.MaxGuidance, NoAdversarial: st.NoAdv, Seed: o.Seed,
		SigmaMax: sigmaMax, DiscReal: st.DiscReal, DiscRealMaxSigma: st.DiscRealMaxSigma,
		GraphDenoisers: o.Graphs && !record && cuda2, Foreach: o.Foreach,
		GraphStep: record,
	}
	if out.trainer, err = osv.NewTrainer(u, out.disc, cfg); err != nil {
		return fail(err)
	}
	out.trainer.Decode = toPixels
	if st.Init != "" {
		if err := out.trainer.Restore(st.Init); err != nil {
			return fail(err)
		}
	}
	dev := u.Device()
	if dev.CUDA {
		torch.Synchronize(dev)
		torch.ResetPeakMemory(dev)
	}
	g, err := torch.NewGenerator(o.Seed + 7)
	if err != nil {
		return fail(err)
	}
	defer g.Close()
	clips := rand.NewPCG(o.Seed, uint64(st.Stage))
	r := rand.New(clips)
	var before progress // what earlier commands did
	if st.Progress != "" {
		p, ok, err := loadProgress(st.Progress, out.trainer, clips, g)
		if err != nil {
			return fail(err)
		}
		if ok {
			before = p
			fmt.Fprintf(log, "  stage %d: resuming after step %d (%.1fs of training so far)\n", st.Stage, p.Steps, p.Wall.Seconds())
		}
	}
	if st.UntilDone != "" {
		if other, ok, err := readRun(st.UntilDone); err != nil {
			return fail(err)
		} else if ok && len(other.Stages) > 0 {
			st.Wall, st.UntilDone = other.Stages[len(other.Stages)-1].Wall, ""
		}
	}
	t0 := time.Now()
	res.Started = before.Started
	if res.Started.IsZero() {
		res.Started = t0.UTC()
	}
	var watching time.Duration // this command's time in Watch
	spent := func() time.Duration { return before.Wall + time.Since(t0) - watching }
	res.Watched, res.Best = before.Watched, before.Best
	var avg *adapterAverage
	if st.Average > 0 {
		if avg, err = newAdapterAverage(out.trainer.Student, st.Average); err != nil {
			return fail(err)
		}
		defer avg.close()
		if before.Steps > 0 {
			if err := avg.load(st.Progress + ".avg.safetensors"); err != nil {
				return fail(err)
			}
		}
	}
	save := func(steps int, done bool) error {
		if st.Progress == "" {
			return nil
		}
		if avg != nil {
			if err := avg.save(st.Progress + ".avg.safetensors"); err != nil {
				return err
			}
		}
		return saveProgress(st.Progress, out.trainer, clips, g, progress{Steps: steps, Wall: spent(), Done: done, Started: res.Started, Watched: res.Watched, Best: res.Best})
	}
	watch := func(step int) error {
		w0 := time.Now()
		defer func() { watching += time.Since(w0) }()
		var fd float64
		err := withoutGrad(out.trainer.Student.Trainable(), func() (err error) {
			fd, err = st.Watch(u)
			return err
		})
		if err != nil {
			return fmt.Errorf("stage %d step %d: the validation: %w", st.Stage, step, err)
		}
		if watchHook != nil {
			fd = watchHook(step, fd)
		}
		res.Watched = append(res.Watched, watchPoint{step, fd})
		if best, _ := bestOf(res.Watched); best == step {
			if err := out.trainer.Student.LoRA.Save(st.Best); err != nil {
				return fmt.Errorf("stage %d step %d: saving the best adapters: %w", st.Stage, step, err)
			}
			res.Best = step
			// the progress says which step the best adapters are from,
			// even if the command ends before the next save
			if err := save(step, false); err != nil {
				return err
			}
		}
		_, bestFD := bestOf(res.Watched)
		fmt.Fprintf(log, "  stage %d step %d: validation FD %.1f (lowest %.1f, at step %d)\n", st.Stage, step, fd, bestFD, res.Best)
		return nil
	}
	res.Steps = before.Steps
	for step := before.Steps + 1; !before.Done; step++ {
		if err := ctx.Err(); err != nil {
			if serr := save(step-1, false); serr != nil {
				return fail(errors.Join(err, serr))
			}
			if st.Progress != "" {
				err = fmt.Errorf("%w (stage %d stopped after step %d; the next run of this job resumes it)", err, st.Stage, step-1)
			}
			return fail(err)
		}
		if st.UntilDone != "" {
			if _, err := os.Stat(st.UntilDone); err == nil || st.Steps > 0 && step > st.Steps {
				break // the other run is done, or this one reached its cap
			}
		} else if st.Wall > 0 && spent() >= st.Wall || st.Wall == 0 && step > st.Steps {
			break
		}
		m, err := trainStep(out.trainer, wc, o.Batch, r, g, dev)
		if err != nil {
			return fail(fmt.Errorf("stage %d step %d: %w", st.Stage, step, err))
		}
		res.Steps, res.Last = step, m
		if avg != nil {
			if err := avg.update(); err != nil {
				return fail(fmt.Errorf("stage %d step %d: the adapters' average: %w", st.Stage, step, err))
			}
		}
		if step%50 == 0 {
			fmt.Fprintf(log, "  stage %d step %d: σ %.3g dist %.4f adv_g %.3f d %.3f %.1fs\n",
				st.Stage, step, m.Sigma, m.LossDist, m.LossAdvG, m.LossD, spent().Seconds())
		}
		if st.Watch != nil && st.WatchEvery > 0 && step%st.WatchEvery == 0 {
			if err := watch(step); err != nil {
				return fail(err)
			}
		}
		if step%progressEvery == 0 {
			if err := save(step, false); err != nil {
				return fail(err)
			}
		}
		if stepHook != nil {
			stepHook(step)
		}
	}
	res.PeakGiB = peak(dev)
	res.Wall = before.Wall // a stage that had finished training
	if !before.Done {
		res.Wall = spent()
		if err := save(res.Steps, true); err != nil {
			return fail(err)
		}
	}
	if st.Checkpoint != "" {
		if err := out.trainer.Save(st.Checkpoint); err != nil {
			return fail(err)
		}
	}
	if avg != nil && st.AverageDir != "" {
		if err := avg.saveAdapters(st.AverageDir); err != nil {
			return fail(fmt.Errorf("stage %d: %w", st.Stage, err))
		}
	}
	return out, res, nil
}

// progressEvery is how often (in steps) a stage with a Progress path
// saves it, besides when it stops and when it ends.
const progressEvery = 200

// stepHook, when set (by tests), is called after each training step.
var stepHook func(step int)

// withoutGrad runs fn with every tensor of ts that autograd tracks (the
// student's trainable ones, say) turned off, so that what fn computes
// keeps no graph for a backward pass (a validation in the middle of
// training would otherwise hold every activation of its batch until it
// ends), and turns them on again after.
func withoutGrad(ts []*torch.Tensor, fn func() error) (err error) {
	var off []*torch.Tensor
	defer func() {
		for _, t := range off {
			if e := t.SetRequiresGrad(true); e != nil && err == nil {
				err = e
			}
		}
	}()
	for _, t := range ts {
		if t.RequiresGrad() {
			if err := t.SetRequiresGrad(false); err != nil {
				return err
			}
			off = append(off, t)
		}
	}
	return fn()
}

// watchHook, when set (by tests), replaces each validation reading.
var watchHook func(step int, fd float64) float64

func trainStep(tr *osv.Trainer, wc world.Config, batch int, r *rand.Rand, g *torch.Generator, dev torch.Device) (osv.Metrics, error) {
	s := torch.NewScope()
	defer s.Close()
	clips := make([]world.Clip, batch)
	for i := range clips {
		clips[i] = wc.Sample(r)
	}
	b, err := batchOf(s, wc, clips, g, dev)
	if err != nil {
		return osv.Metrics{}, err
	}
	return tr.Step(b)
}
