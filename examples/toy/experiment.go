package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// experiment is the whole run's settings. Its phases (the teacher, each
// seed's jobs, the table) write their results into Work as they finish,
// so that a run cut short resumes where it stopped.
type experiment struct {
	Out, Work, Device, Command string
	World                      world.Config
	TeacherSteps               int
	TeacherWall                time.Duration // when > 0: as many steps as fit, measured on the first steps
	TeacherBudget              time.Duration // when > 0: stop the teacher after this long and keep it for the next command
	TeacherBatch               int
	TeacherGraph               bool    // on CUDA: each teacher step replays one recorded CUDA graph
	TeacherInit                string  // when set: the teacher starts from this UNet folder (the committed teacher, say) instead of random weights
	TeacherBlocks              []int64 // the teacher's block widths (default teacherBlocks)
	Stage2Graphs               bool    // on CUDA: stage 2's teacher and θ⁻ calls replay CUDA graphs
	Stage2Record               bool    // on CUDA: stage 2's whole step is recorded once as a CUDA graph
	Stage1Record               bool    // on CUDA: stage 1's whole step too
	ShortAttention             int64   // on CUDA: attention over at most this many tokens in its math form (torch.SetShortAttention; 0: fused kernels always)
	FusedLayerNorm             bool    // on CUDA: LayerNorm as the bridge's kernel where autograd records nothing (torch.SetFusedLayerNorm)
	TeacherLR                  float64
	TeacherEMA                 float64 // when > 0: the teacher kept is the EMA of its weights with this decay per step
	TeacherAutocast            bool    // the teacher's forward pass in training under bfloat16 autocast
	PMean, PStd                float64 // the teacher's ln σ ~ N(PMean, PStd²)
	Stage1Steps                int
	Stage2Steps                int
	Batch                      int
	Rank                       int64
	LR, DiscLR                 float64
	LambdaAdv                  float64 // stage 2's adversarial weight (0 in a run file from before the flag: the paper's 0.1)
	MaxGuidance                float64
	GuidanceRows               []float64 // more last-frame guidances the teacher is evaluated at, 25 steps each
	EvalClips, EvalBatch       int
	Watch                      int      // stage 2: every this many steps, the student's FD on validation clips (0: never)
	WatchClips                 int      // the validation clips, none of them held out
	AdapterEMA                 float64  // stage 2: also keep the moving average of the student's adapters with this decay a step, evaluated as rows of its own (0: none)
	Seeds                      []uint64 // the students' seeds; the teacher uses the first
	Quick                      bool
}

// stageLine is one training stage's wall time, step count and peak memory.
type stageLine struct {
	Name    string
	Steps   int
	Wall    time.Duration
	PeakGiB float64
}

func defaultExperiment() experiment {
	return experiment{
		World:        world.DefaultConfig(),
		TeacherSteps: 3000, TeacherBatch: 128, TeacherBlocks: slices.Clone(teacherBlocks), TeacherLR: 4e-4, PMean: -0.5, PStd: 1.4,
		Stage1Steps: 300, Stage2Steps: 600, Batch: 32,
		Rank: 16, LR: 5e-4, DiscLR: 2e-4, LambdaAdv: toyLambdaAdv, MaxGuidance: 2,
		EvalClips: 128, EvalBatch: 64, WatchClips: 64, Seeds: []uint64{1, 2, 3},
	}
}

// toyLambdaAdv is the toy's stage-2 adversarial weight, twice the
// paper's 0.1: with this world's randomly initialised, frozen
// discriminator backbone it gave the lower median FD over nine trainings
// of each weight (docs/RESULTS.md, "The default weight: λ_adv 0.2").
const toyLambdaAdv = 0.2

// paperLambdaAdv is the paper's adversarial weight (osv.TrainConfig's
// default).
const paperLambdaAdv = 0.1

// lambdaAdv is the stage-2 adversarial weight the settings ran with: a
// run file from before -lambda-adv ran with the paper's.
func (o *experiment) lambdaAdv() float64 {
	if o.LambdaAdv == 0 {
		return paperLambdaAdv
	}
	return o.LambdaAdv
}

// record is a copy of the settings for a run file.
func (o *experiment) record() *experiment {
	c := *o
	return &c
}

// quick shrinks every stage to a few steps: a check that the whole path
// runs, not an experiment.
func (o experiment) quick() experiment {
	o.Quick = true
	o.TeacherSteps, o.TeacherWall, o.TeacherBatch = 3, 0, 2
	o.Stage1Steps, o.Stage2Steps, o.Batch = 2, 2, 1
	o.EvalClips, o.EvalBatch, o.WatchClips = 4, 2, 4
	o.Seeds = o.Seeds[:1]
	return o
}

// env is what every phase shares: the log, the device and the held-out
// evaluation set.
type env struct {
	log io.Writer
	dev torch.Device
	es  *evalSet
	vs  *evalSet // the validation clips, made when first needed
}

// validation is the set stage 2's -watch reads: WatchClips clips of the
// world drawn apart from the held-out ones and from every training
// stream, with fixed noise, at 1 step + TTS.
func (e *env) validation(o *experiment) *evalSet {
	if e.vs == nil {
		r := rand.New(rand.NewPCG(3000, 0))
		clips := make([]world.Clip, o.WatchClips)
		for i := range clips {
			clips[i] = o.World.Sample(r)
		}
		e.vs = newEvalSet(o.World, clips, o.EvalBatch, 4000)
	}
	return e.vs
}

func (o *experiment) setup(stderr io.Writer, logName string) (*env, func(), error) {
	if err := o.World.Validate(); err != nil {
		return nil, nil, err
	}
	if o.Work == "" {
		o.Work = o.Out
	}
	for _, d := range []string{o.Work, o.Out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, nil, err
		}
	}
	logFile, err := os.OpenFile(filepath.Join(o.Work, logName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	e := &env{log: io.MultiWriter(stderr, logFile)}
	if e.dev, err = torch.ParseDevice(o.Device); err != nil {
		logFile.Close()
		return nil, nil, err
	}
	if e.dev.CUDA {
		if err := torch.SetTF32(true); err != nil {
			logFile.Close()
			return nil, nil, err
		}
	}
	if err := torch.SetShortAttention(o.ShortAttention); err != nil {
		logFile.Close()
		return nil, nil, err
	}
	if err := torch.SetFusedLayerNorm(o.FusedLayerNorm && e.dev.CUDA); err != nil {
		logFile.Close()
		return nil, nil, err
	}
	fmt.Fprintf(e.log, "toy: %s on %s, %d CPUs, %s\n", o.Command, o.Device, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	e.es, _, _ = o.heldOut()
	return e, func() { logFile.Close() }, nil
}

// heldOut is the evaluation set (clips the models never see, the same for
// every phase), an independent sample of the world and the first frames
// held still, for the reference rows.
func (o *experiment) heldOut() (es *evalSet, other, still [][]float32) {
	wc := o.World
	r := rand.New(rand.NewPCG(1000, 0))
	held := make([]world.Clip, o.EvalClips)
	for i := range held {
		held[i] = wc.Sample(r)
	}
	other = make([][]float32, o.EvalClips)
	still = make([][]float32, o.EvalClips)
	for i := range other {
		other[i] = wc.Sample(r).Pixels
		still[i] = holdStill(wc, held[i].Pixels)
	}
	return newEvalSet(wc, held, o.EvalBatch, 2000), other, still
}

func (o *experiment) teacherDir() string { return filepath.Join(o.Work, "teacher") }

// blocks is the teacher's block widths: TeacherBlocks, or the default for
// settings recorded before there was a choice.
func (o *experiment) blocks() []int64 {
	if len(o.TeacherBlocks) == 0 {
		return teacherBlocks
	}
	return o.TeacherBlocks
}

// lastTeacherDir holds the teacher's last weights when the teacher kept is
// their moving average.
func (o *experiment) lastTeacherDir() string { return filepath.Join(o.Work, "teacher-last") }

// paramList is u's parameters in their order (nil for no model).
func paramList(u *unet.Model) []*torch.Tensor {
	if u == nil {
		return nil
	}
	var ps []*torch.Tensor
	for _, p := range u.Params().List() {
		ps = append(ps, p.T)
	}
	return ps
}

// teacherPhase trains the teacher (unless Work holds it) and evaluates it.
func (o *experiment) teacherPhase(ctx context.Context, e *env) error {
	path := filepath.Join(o.Work, "teacher.json")
	if _, ok, err := readRun(path); err != nil || ok {
		if ok {
			fmt.Fprintf(e.log, "teacher: %s exists, kept\n", path)
		}
		return err
	}
	run := runFile{Job: "teacher", Seed: o.Seeds[0], Command: o.Command, Device: o.Device, Started: time.Now().UTC(), Settings: o.record()}
	wc := o.World
	dir := o.teacherDir()
	var u *unet.Model
	trained := filepath.Join(o.Work, "teacher-train.json")
	if prev, ok, err := readRun(trained); err != nil {
		return err
	} else if ok {
		fmt.Fprintf(e.log, "teacher: reusing the trained weights in %s\n", dir)
		if u, err = unet.Load(dir, unet.WithDevice(o.Device)); err != nil {
			return err
		}
		run.Stages, run.Loss = prev.Stages, prev.Loss
		if !prev.Started.IsZero() {
			run.Started = prev.Started
		}
	} else {
		ckpt, progPath := filepath.Join(o.Work, "teacher-ckpt"), filepath.Join(o.Work, "teacher-progress.json")
		emaCkpt := filepath.Join(o.Work, "teacher-ckpt-ema")
		var prog teacherProgress
		var ema *unet.Model // the weights' moving average, when -teacher-ema is set
		if b, err := os.ReadFile(progPath); err == nil {
			if err := json.Unmarshal(b, &prog); err != nil {
				return fmt.Errorf("%s: %w", progPath, err)
			}
			if prog.Batch != o.TeacherBatch {
				return fmt.Errorf("%s: the teacher was trained at batch %d, not -teacher-batch %d", progPath, prog.Batch, o.TeacherBatch)
			}
			if prog.EMA != o.TeacherEMA {
				return fmt.Errorf("%s: the teacher was trained with -teacher-ema %g, not %g", progPath, prog.EMA, o.TeacherEMA)
			}
			if u, err = unet.Load(ckpt, unet.WithDevice(o.Device)); err != nil {
				return err
			}
			if o.TeacherEMA > 0 {
				if ema, err = unet.Load(emaCkpt, unet.WithDevice(o.Device)); err != nil {
					u.Close()
					return err
				}
			}
			fmt.Fprintf(e.log, "teacher: resuming at step %d of %d from %s (fresh optimiser moments)\n", prog.Step, prog.Steps, ckpt)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		} else {
			if u, err = o.freshTeacher(); err != nil {
				return err
			}
			if o.TeacherEMA > 0 { // the average starts at the first weights
				if ema, err = o.freshTeacher(); err != nil {
					u.Close()
					return err
				}
			}
			prog = teacherProgress{Steps: o.TeacherSteps, Batch: o.TeacherBatch, From: o.TeacherInit, EMA: o.TeacherEMA, Started: run.Started}
		}
		defer func() {
			if ema != nil {
				ema.Close()
			}
		}()
		fmt.Fprintf(e.log, "teacher: %.3g parameters\n", float64(u.NumParams()))
		t0 := time.Now()
		if e.dev.CUDA {
			torch.ResetPeakMemory(e.dev)
		}
		res, err := trainTeacher(ctx, u, wc, teacherOptions{
			Steps: prog.Steps, Wall: o.TeacherWall, Batch: o.TeacherBatch, LR: o.TeacherLR,
			PMean: o.PMean, PStd: o.PStd, DropCond: 0.1, Seed: o.Seeds[0],
			Graph: o.TeacherGraph, From: prog.Step, Budget: o.TeacherBudget, TailSum: prog.TailSum, TailN: prog.TailN,
			EMA: paramList(ema), EMADecay: o.TeacherEMA, Autocast: o.TeacherAutocast,
		}, e.log)
		if err != nil {
			u.Close()
			return err
		}
		prog.Step, prog.Steps, prog.TailSum, prog.TailN = res.Reached, res.Steps, res.TailSum, res.TailN
		prog.Wall += time.Since(t0)
		prog.PeakGiB = max(prog.PeakGiB, peak(e.dev))
		if !res.done() {
			// Out of this command's budget: keep the float32 weights and the
			// progress for the next command.
			defer u.Close()
			if err := u.Save(ckpt); err != nil {
				return err
			}
			if ema != nil {
				if err := ema.Save(emaCkpt); err != nil {
					return err
				}
			}
			b, err := json.MarshalIndent(prog, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(progPath, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(e.log, "teacher: %d of %d steps; the same command continues from %s\n", prog.Step, prog.Steps, ckpt)
			return errTeacherUnfinished
		}
		run.Loss = res.Loss
		if !prog.Started.IsZero() { // the first command's start, not this one's
			run.Started = prog.Started
		}
		start := "from scratch"
		if prog.From != "" {
			start = "continued from " + prog.From
		}
		how := fmt.Sprintf("batch %d", o.TeacherBatch)
		if o.TeacherAutocast {
			how += ", bfloat16 autocast"
		}
		run.Stages = []stageLine{{fmt.Sprintf("teacher (EDM, %s, %s)", start, how), res.Steps, prog.Wall, prog.PeakGiB}}
		if ema != nil {
			// The average is the teacher; the last weights are kept beside
			// it for the comparison row.
			last, err := saveBF16(u, o.lastTeacherDir(), o.Device)
			if err != nil {
				return err
			}
			last.Close()
			u, ema = ema, nil
		}
		u, err = saveBF16(u, dir, o.Device)
		if err != nil {
			return err
		}
		if err := writeRun(trained, run); err != nil {
			u.Close()
			return err
		}
	}
	defer u.Close()
	es, other, still := o.heldOut()
	for _, ref := range []struct {
		name string
		px   [][]float32
	}{{"ground truth (an independent sample)", other}, {"first frame held still", still}} {
		r, err := es.scoreClips(ref.name, 0, ref.px)
		if err != nil {
			return err
		}
		run.Rows = append(run.Rows, r)
	}
	if o.TeacherEMA > 0 {
		last, err := unet.Load(o.lastTeacherDir(), unet.WithDevice(o.Device))
		if err != nil {
			return err
		}
		r, err := o.eval(es, last, fmt.Sprintf("teacher's last weights (not averaged), 25 steps (guidance 1→%g)", o.MaxGuidance), teacherSampler(25, 1, o.MaxGuidance), e.log)
		last.Close()
		if err != nil {
			return err
		}
		run.Rows = append(run.Rows, r)
	}
	for _, n := range []int{25, 8, 2, 1} {
		r, err := o.eval(es, u, fmt.Sprintf("teacher, %d steps (guidance 1→%g)", n, o.MaxGuidance), teacherSampler(n, 1, o.MaxGuidance), e.log)
		if err != nil {
			return err
		}
		run.Rows = append(run.Rows, r)
		if n == 25 {
			if err := writeClipGIF(filepath.Join(o.Work, "teacher-25-steps.gif"), wc, r.Sample[0]); err != nil {
				return err
			}
			if err := writeClipGIF(filepath.Join(o.Work, "ground-truth.gif"), wc, es.clips[0].Pixels); err != nil {
				return err
			}
		}
	}
	for _, g := range o.GuidanceRows {
		r, err := o.eval(es, u, fmt.Sprintf("teacher, 25 steps (guidance 1→%g)", g), teacherSampler(25, 1, g), e.log)
		if err != nil {
			return err
		}
		run.Rows = append(run.Rows, r)
	}
	return writeRun(path, run)
}

// freshTeacher is the teacher before its training: random weights, or
// TeacherInit's, which must have the toy teacher's configuration, or
// that configuration at half the block widths (then widened, widenInto).
func (o *experiment) freshTeacher() (*unet.Model, error) {
	cfg := teacherUNet(o.World, o.blocks())
	if o.TeacherInit == "" {
		return unet.New(cfg, unet.WithDevice(o.Device), unet.WithSeed(o.Seeds[0]))
	}
	u, err := unet.Load(o.TeacherInit, unet.WithDevice(o.Device))
	if err != nil {
		return nil, fmt.Errorf("-teacher-init: %w", err)
	}
	shape := func(c unet.Config) string {
		return fmt.Sprintf("sample %d, channels %d → %d, blocks %v, frames %d", c.SampleSize, c.InChannels, c.OutChannels, c.BlockOutChannels, c.NumFrames)
	}
	got, want := shape(u.Config), shape(cfg)
	if got == want {
		return u, nil
	}
	defer u.Close()
	narrower := cfg // the toy teacher at the init's widths
	narrower.BlockOutChannels = u.Config.BlockOutChannels
	if got != shape(narrower) || !slices.Equal(cfg.BlockOutChannels, doubled(u.Config.BlockOutChannels)) {
		return nil, fmt.Errorf("-teacher-init %s: its UNet (%s) is not this world's toy teacher (%s), nor one of half its widths", o.TeacherInit, got, want)
	}
	// Twice the init's widths: the wider teacher starts computing what
	// the init computes.
	w, err := unet.New(cfg, unet.WithDevice(o.Device), unet.WithSeed(o.Seeds[0]))
	if err != nil {
		return nil, err
	}
	if err := widenInto(w, u); err != nil {
		w.Close()
		return nil, fmt.Errorf("-teacher-init %s: %w", o.TeacherInit, err)
	}
	return w, nil
}

// doubled is every width twice.
func doubled(ws []int64) []int64 {
	out := make([]int64, len(ws))
	for i, w := range ws {
		out[i] = 2 * w
	}
	return out
}

// teacherProgress is an unfinished teacher's state between commands.
type teacherProgress struct {
	From               string // the folder the training started from ("": random weights)
	Step, Steps, Batch int
	TailSum            float64
	TailN              int
	Wall               time.Duration
	PeakGiB            float64
	EMA                float64   // the decay of the weights' moving average (0: none)
	Started            time.Time // when the first command of the training started
}

// errTeacherUnfinished stops the phases after a teacher that ran out of
// its command's budget; the same command continues it.
var errTeacherUnfinished = errors.New("the teacher is not finished: run the same command again to continue")

// saveBF16 stores u in dir with its weights rounded to bfloat16 (half the
// size on disk: the committed teacher is this file) and returns the model
// as every later phase sees it, the rounded weights loaded in float32. It
// closes u.
func saveBF16(u *unet.Model, dir, device string) (*unet.Model, error) {
	err := u.Save(dir)
	u.Close()
	if err != nil {
		return nil, err
	}
	half, err := unet.Load(dir, unet.WithDevice(device), unet.WithDType("bf16"))
	if err != nil {
		return nil, err
	}
	err = half.Save(dir)
	half.Close()
	if err != nil {
		return nil, err
	}
	return unet.Load(dir, unet.WithDevice(device))
}

// seedPhase runs the named jobs (all when names is empty) for one seed,
// each one skipped when its file exists.
func (o *experiment) seedPhase(ctx context.Context, e *env, seed uint64, names []string) error {
	if _, ok, err := readRun(filepath.Join(o.Work, "teacher.json")); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("no teacher in %s: run the teacher phase first", o.Work)
	}
	for _, j := range o.jobs(seed) {
		if len(names) > 0 && !contains(names, j.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		path := jobFile(o.Work, seed, j.name)
		if _, ok, err := readRun(path); err != nil {
			return err
		} else if ok {
			fmt.Fprintf(e.log, "seed %d %s: %s exists, kept\n", seed, j.name, path)
			continue
		}
		fmt.Fprintf(e.log, "seed %d %s: %s\n", seed, j.name, j.label)
		run, err := o.runJob(ctx, e, seed, j)
		if err != nil {
			return fmt.Errorf("seed %d, %s: %w", seed, j.name, err)
		}
		if err := writeRun(path, run); err != nil {
			return err
		}
		if err := removeJobProgress(o.Work, seed, j); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (o *experiment) eval(es *evalSet, u *unet.Model, name string, sm sampler, log io.Writer) (row, error) {
	r, err := es.run(name, u, sm)
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(log, "  %-78s FD %.3f speed %.2f W1 %.2f persistence %.2f background %.3f\n",
		name, r.FD, r.Motion.Speed, r.SpeedW1, r.Motion.Persistence, r.Background)
	return r, nil
}

// holdStill repeats a clip's first frame over all its frames.
func holdStill(wc world.Config, px []float32) []float32 {
	per := 3 * wc.Size * wc.Size
	out := make([]float32, 0, len(px))
	for range wc.Frames {
		out = append(out, px[:per]...)
	}
	return out
}

func peak(dev torch.Device) float64 {
	if !dev.CUDA {
		return 0
	}
	torch.Synchronize(dev)
	m, err := torch.CUDAMemory(dev)
	if err != nil {
		return 0
	}
	return float64(m.Peak) / (1 << 30)
}

// copyFolder copies the files of one folder into another (made if needed).
func copyFolder(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
