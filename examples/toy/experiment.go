package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// experiment is the whole run: its settings and what it measured.
type experiment struct {
	Out, Work, Device, Command string
	World                      world.Config
	TeacherSteps               int
	TeacherBatch               int
	TeacherLR                  float64
	Stage1Steps                int
	Stage2Steps                int
	Batch                      int
	Rank                       int64
	LR, DiscLR                 float64
	MaxGuidance                float64
	EvalClips, EvalBatch       int
	Seed                       uint64
	Quick                      bool

	started time.Time
	stages  []stageLine
	rows    []row
	teacher float64 // the teacher's final training loss
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
		TeacherSteps: 900, TeacherBatch: 128, TeacherLR: 4e-4,
		Stage1Steps: 100, Stage2Steps: 120, Batch: 32,
		Rank: 32, LR: 5e-4, DiscLR: 2e-4, MaxGuidance: 2,
		EvalClips: 128, EvalBatch: 64, Seed: 1,
	}
}

// quick shrinks every stage to a few steps: a check that the whole path
// runs, not an experiment.
func (o experiment) quick() experiment {
	o.Quick = true
	o.TeacherSteps, o.TeacherBatch = 3, 2
	o.Stage1Steps, o.Stage2Steps, o.Batch = 2, 2, 1
	o.EvalClips, o.EvalBatch = 4, 2
	return o
}

func (o *experiment) run(ctx context.Context, stdout, stderr io.Writer) error {
	o.started = time.Now()
	if err := o.World.Validate(); err != nil {
		return err
	}
	if o.Work == "" {
		o.Work = o.Out
	}
	if err := os.MkdirAll(filepath.Join(o.Work, "checkpoints"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(o.Out, "log.txt"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := io.MultiWriter(stderr, logFile)
	dev, err := torch.ParseDevice(o.Device)
	if err != nil {
		return err
	}
	if dev.CUDA {
		if err := torch.SetTF32(true); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "toy: %s on %s, %d CPUs\n", o.Command, o.Device, runtime.NumCPU())

	// The held-out evaluation set and the reference rows.
	wc := o.World
	r := rand.New(rand.NewPCG(o.Seed+1000, 0))
	held := make([]world.Clip, o.EvalClips)
	for i := range held {
		held[i] = wc.Sample(r)
	}
	es := newEvalSet(wc, held, o.EvalBatch, o.Seed+2000)
	other := make([][]float32, o.EvalClips)
	still := make([][]float32, o.EvalClips)
	for i := range other {
		other[i] = wc.Sample(r).Pixels
		still[i] = holdStill(wc, held[i].Pixels)
	}
	if err := o.score(es, "ground truth (an independent sample)", other); err != nil {
		return err
	}
	if err := o.score(es, "first frame held still", still); err != nil {
		return err
	}

	// The teacher.
	teacherDir := filepath.Join(o.Work, "teacher")
	u, err := unet.New(teacherUNet(wc), unet.WithDevice(o.Device), unet.WithSeed(o.Seed))
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "teacher: %.3g parameters\n", float64(u.NumParams()))
	t0 := time.Now()
	if dev.CUDA {
		torch.ResetPeakMemory(dev)
	}
	o.teacher, err = trainTeacher(u, wc, teacherOptions{
		Steps: o.TeacherSteps, Batch: o.TeacherBatch, LR: o.TeacherLR, PMean: 0.7, PStd: 1.6, DropCond: 0.1, Seed: o.Seed,
	}, log)
	if err != nil {
		u.Close()
		return err
	}
	o.stages = append(o.stages, stageLine{"teacher (EDM, from scratch)", o.TeacherSteps, time.Since(t0), peak(dev)})
	if err := u.Save(teacherDir); err != nil {
		u.Close()
		return err
	}
	for _, n := range []int{25, 8, 2, 1} {
		if err := o.eval(es, u, fmt.Sprintf("teacher, %d steps (guidance 1→%g)", n, o.MaxGuidance), teacherSampler(n, 1, o.MaxGuidance), log); err != nil {
			u.Close()
			return err
		}
		if n == 25 {
			if err := writeClipGIF(filepath.Join(o.Out, "teacher-25-steps.gif"), wc, o.rows[len(o.rows)-1].Sample[0]); err != nil {
				u.Close()
				return err
			}
			if err := writeClipGIF(filepath.Join(o.Out, "ground-truth.gif"), wc, held[0].Pixels); err != nil {
				u.Close()
				return err
			}
		}
	}
	u.Close()
	if err := ctx.Err(); err != nil {
		return err
	}

	// OSV: the runs and their evaluations.
	do := distillOptions{Batch: o.Batch, Rank: o.Rank, LR: o.LR, DiscLR: o.DiscLR, MaxGuidance: o.MaxGuidance, Seed: o.Seed, Device: o.Device}
	ckpt := func(name string) string { return filepath.Join(o.Work, "checkpoints", name+".safetensors") }
	type job struct {
		label    string
		stage    stageRun
		samplers []sampler
		after    func(st *student, res stageResult) error
	}
	var fullWall time.Duration
	one, tts, two := studentSteps(1), studentTTS(), studentSteps(2)
	jobs := []job{
		{"OSV without stage 2 (stage 1 only)", stageRun{Stage: 1, Steps: o.Stage1Steps, K: 5, Checkpoint: ckpt("stage1")}, []sampler{one, tts}, nil},
		{"OSV", stageRun{Stage: 2, Steps: o.Stage2Steps, K: 5, Init: ckpt("stage1"), Checkpoint: ckpt("osv")}, []sampler{one, tts, two},
			func(st *student, res stageResult) error {
				fullWall = res.Wall
				exported := filepath.Join(o.Work, "export")
				if err := st.trainer.Export(exported); err != nil {
					return err
				}
				// The merged UNet is the demo model.
				if err := copyFolder(filepath.Join(exported, "unet"), filepath.Join(o.Out, "student")); err != nil {
					return err
				}
				return writeClipGIF(filepath.Join(o.Out, "osv-1-step.gif"), wc, o.rows[len(o.rows)-3].Sample[0])
			}},
		{"OSV without stage 1", stageRun{Stage: 2, Steps: o.Stage2Steps, K: 5}, []sampler{one, tts}, nil},
		{"OSV without adversarial loss", stageRun{Stage: 2, Steps: o.Stage2Steps, K: 5, NoAdv: true, Init: ckpt("stage1")}, []sampler{one, tts}, nil},
		{"OSV with k = 1 (same stage-2 wall time)", stageRun{Stage: 2, K: 1, Init: ckpt("stage1")}, []sampler{one, tts}, nil},
		{"stage 1 with the pixel discriminator", stageRun{Stage: 1, Steps: o.Stage1Steps, K: 5, PixelDisc: true, Checkpoint: ckpt("stage1-pixel")}, nil, nil},
		{"OSV with the pixel discriminator (decoded frames)", stageRun{Stage: 2, Steps: o.Stage2Steps, K: 5, PixelDisc: true, Init: ckpt("stage1-pixel")}, []sampler{one, tts}, nil},
	}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if j.stage.Stage == 2 && j.stage.Steps == 0 { // k = 1: the full run's stage-2 time
			j.stage.Wall = fullWall
		}
		fmt.Fprintf(log, "%s\n", j.label)
		st, res, err := runStage(teacherDir, wc, j.stage, do, log)
		if err != nil {
			return fmt.Errorf("%s: %w", j.label, err)
		}
		if res.Steps > 0 {
			o.stages = append(o.stages, stageLine{j.label, res.Steps, res.Wall, res.PeakGiB})
		}
		for _, sm := range j.samplers {
			name := fmt.Sprintf("%s, %s", j.label, samplerLabel(sm))
			if err := o.eval(es, st.UNet, name, sm, log); err != nil {
				st.Close()
				return err
			}
		}
		if j.after != nil {
			if err := j.after(st, res); err != nil {
				st.Close()
				return err
			}
		}
		st.Close()
	}
	path := filepath.Join(o.Out, "RESULTS.md")
	if err := os.WriteFile(path, []byte(o.report()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s", o.table())
	fmt.Fprintf(log, "wrote %s in %.1fs\n", path, time.Since(o.started).Seconds())
	return nil
}

func samplerLabel(sm sampler) string {
	switch sm.name {
	case "osv+tts":
		return "1 step + TTS"
	case "osv":
		if sm.nfe == 1 {
			return "1 step"
		}
		return fmt.Sprintf("%d steps", sm.nfe)
	}
	return sm.name
}

func (o *experiment) eval(es *evalSet, u *unet.Model, name string, sm sampler, log io.Writer) error {
	r, err := es.run(name, u, sm)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	o.rows = append(o.rows, r)
	fmt.Fprintf(log, "  %-70s FD %.3f speed %.2f W1 %.2f persistence %.2f\n", name, r.FD, r.Motion.Speed, r.SpeedW1, r.Motion.Persistence)
	return nil
}

func (o *experiment) score(es *evalSet, name string, px [][]float32) error {
	r, err := es.scoreClips(name, 0, px)
	if err != nil {
		return err
	}
	o.rows = append(o.rows, r)
	return nil
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
