package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/unet"
)

// job is one training run of a seed with the samplers its rows use.
type job struct {
	name, label string
	needs       []string   // jobs whose checkpoints this one starts from
	stages      []stageRun // trained in order; a stage with Init "" starts from the teacher
	samplers    []sampler
}

// The row names the claims and the table refer to.
const (
	labelStage1   = "OSV without stage 2 (stage 1 only)"
	labelOSV      = "OSV"
	labelK1       = "OSV with k = 1 (same stage-2 wall time)"
	labelNoStage1 = "OSV without stage 1"
	labelNoAdv    = "OSV without adversarial loss"
	labelRealData = "OSV, discriminator real = the data x0"
	labelRealLow  = "OSV, discriminator real = the teacher's estimate only at σ ≤ 1 (x0 above)"
	labelPixel    = "OSV with the pixel discriminator (decoded frames)"
	labelAdv1     = "OSV with the paper's λ_adv 0.1"
	labelAdv2     = "OSV with λ_adv 0.2 (2×)"
	labelAdv3     = "OSV with λ_adv 0.3 (3×)"
	labelDiscLR5  = "OSV with the discriminator's rate 0.001 (5×)"
)

// jobs lists a seed's runs in an order that satisfies their needs.
func (o *experiment) jobs(seed uint64) []job {
	ck := func(name string) string { return filepath.Join(seedDir(o.Work, seed), name+".safetensors") }
	one, tts, two := studentSteps(1), studentTTS(), studentSteps(2)
	four := solver.KarrasSigmas(4, sigmaMin, sigmaMax, rho)
	s1 := stageRun{Stage: 1, Steps: o.Stage1Steps, K: 5}
	s2 := stageRun{Stage: 2, Steps: o.Stage2Steps, K: 5, Init: ck("stage1"), LambdaAdv: o.lambdaAdv()}
	with := func(s stageRun, edit func(*stageRun)) stageRun { edit(&s); return s }
	return []job{
		{name: "stage1", label: labelStage1, stages: []stageRun{with(s1, func(s *stageRun) { s.Checkpoint = ck("stage1") })}, samplers: []sampler{one, tts}},
		{name: "osv", label: labelOSV, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.Checkpoint = ck("osv") })},
			samplers: []sampler{one, tts, studentTTSAt(four[1], true), studentTTSAt(four[2], true), two}},
		{name: "k1", label: labelK1, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) {
			s.K, s.Steps, s.UntilDone = 1, 10*o.Stage2Steps, jobFile(o.Work, seed, "osv")
		})}, samplers: []sampler{one, tts}},
		{name: "no-stage1", label: labelNoStage1, stages: []stageRun{with(s2, func(s *stageRun) { s.Init = "" })}, samplers: []sampler{one, tts}},
		{name: "no-adv", label: labelNoAdv, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.NoAdv = true })}, samplers: []sampler{one, tts}},
		{name: "real-data", label: labelRealData, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.DiscReal = "data" })}, samplers: []sampler{one, tts}},
		{name: "real-low", label: labelRealLow, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.DiscReal, s.DiscRealMaxSigma = "teacher", 1 })}, samplers: []sampler{one, tts}},
		{name: "pixel", label: labelPixel, stages: []stageRun{
			with(s1, func(s *stageRun) { s.PixelDisc, s.Checkpoint = true, ck("stage1-pixel") }),
			with(s2, func(s *stageRun) { s.PixelDisc, s.Init = true, ck("stage1-pixel") }),
		}, samplers: []sampler{one, tts}},
		// The discriminator's weight and strength, beyond the paper's rows
		// (adv-0.2 is the default's weight, kept for the tables made at 0.1).
		{name: "adv-0.1", label: labelAdv1, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.LambdaAdv = paperLambdaAdv })}, samplers: []sampler{one, tts}},
		{name: "adv-0.2", label: labelAdv2, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.LambdaAdv = 0.2 })}, samplers: []sampler{one, tts}},
		{name: "adv-0.3", label: labelAdv3, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.LambdaAdv = 0.3 })}, samplers: []sampler{one, tts}},
		{name: "disc-lr-0.001", label: labelDiscLR5, needs: []string{"stage1"}, stages: []stageRun{with(s2, func(s *stageRun) { s.DiscLR = 1e-3 })}, samplers: []sampler{one, tts}},
	}
}

// runJob trains a job's stages and evaluates its samplers; the OSV job of
// the first seed also exports the student and its pictures.
func (o *experiment) runJob(ctx context.Context, e *env, seed uint64, j job) (runFile, error) {
	run := runFile{Job: j.name, Seed: seed, Command: o.Command, Device: o.Device, Started: time.Now().UTC(), Settings: o.record()}
	for _, need := range j.needs {
		if _, ok, err := readRun(jobFile(o.Work, seed, need)); err != nil {
			return run, err
		} else if !ok {
			return run, fmt.Errorf("needs the %s job of seed %d first", need, seed)
		}
	}
	do := distillOptions{Batch: o.Batch, Rank: o.Rank, LR: o.LR, DiscLR: o.DiscLR, MaxGuidance: o.MaxGuidance, Seed: seed, Device: o.Device, Graphs: o.Stage2Graphs, Record: o.Stage2Record, Record1: o.Stage1Record}
	if err := os.MkdirAll(seedDir(o.Work, seed), 0o755); err != nil {
		return run, err
	}
	var st *student
	for i, sr := range j.stages {
		if st != nil {
			st.Close()
		}
		sr.Progress = progressBase(o.Work, seed, j.name, i)
		if o.Watch > 0 && sr.Stage == 2 && i == len(j.stages)-1 {
			vs := e.validation(o)
			sr.Watch = func(u *unet.Model) (float64, error) {
				r, err := vs.run("validation", u, studentTTS())
				return r.FD, err
			}
			sr.WatchEvery, sr.Best = o.Watch, jobBestAdapters(o.Work, seed, j.name)
		}
		if o.AdapterEMA > 0 && sr.Stage == 2 && i == len(j.stages)-1 {
			sr.Average, sr.AverageDir = o.AdapterEMA, jobAverageAdapters(o.Work, seed, j.name)
		}
		var res stageResult
		var err error
		st, res, err = runStage(ctx, o.teacherDir(), o.World, sr, do, e.log)
		if err != nil {
			return run, err
		}
		name := fmt.Sprintf("%s: stage %d", j.label, sr.Stage)
		if len(j.stages) > 1 {
			name = fmt.Sprintf("%s: stage %d (%d of %d)", j.label, sr.Stage, i+1, len(j.stages))
		}
		run.Stages = append(run.Stages, stageLine{name, res.Steps, res.Wall, res.PeakGiB})
		run.Watched, run.Best = res.Watched, res.Best
		if i == 0 && res.Started.Before(run.Started) { // resumed: dated by its first command
			run.Started = res.Started
		}
	}
	defer st.Close()
	for _, sm := range j.samplers {
		r, err := o.eval(e.es, st.UNet, fmt.Sprintf("%s, %s", j.label, samplerLabel(sm)), sm, e.log)
		if err != nil {
			return run, err
		}
		run.Rows = append(run.Rows, r)
		if j.name == "osv" && seed == o.Seeds[0] && len(r.Sample) > 0 {
			switch {
			case sm.name == "osv" && sm.nfe == 1:
				err = writeClipGIF(filepath.Join(o.Work, "osv-1-step.gif"), o.World, r.Sample[0])
			case sm.name == "osv+tts" && sm.travel == travelSigma():
				err = writeClipGIF(filepath.Join(o.Work, "osv-1-step-tts.gif"), o.World, r.Sample[0])
			}
			if err != nil {
				return run, err
			}
		}
	}
	// Every job keeps its student's adapters, for toy demo -lora.
	if err := st.trainer.Student.LoRA.Save(jobAdapters(o.Work, seed, j.name)); err != nil {
		return run, fmt.Errorf("seed %d %s: saving the adapters: %w", seed, j.name, err)
	}
	if run.Best > 0 {
		rows, err := o.evalBest(e, seed, j)
		if err != nil {
			return run, fmt.Errorf("seed %d %s: %w", seed, j.name, err)
		}
		run.Rows = append(run.Rows, rows...)
	}
	if o.AdapterEMA > 0 && j.stages[len(j.stages)-1].Stage == 2 {
		rows, err := o.evalAdapters(e, jobAverageAdapters(o.Work, seed, j.name), averageLabel(j.label, o.AdapterEMA), j.samplers)
		if err != nil {
			return run, fmt.Errorf("seed %d %s: %w", seed, j.name, err)
		}
		run.Rows = append(run.Rows, rows...)
	}
	if j.name == "osv" && seed == o.Seeds[0] {
		exported := filepath.Join(o.Work, "export")
		if err := st.trainer.Export(exported); err != nil {
			return run, err
		}
		// The adapters are the demo model, on top of the committed teacher.
		if err := copyFolder(filepath.Join(exported, "lora"), filepath.Join(o.Work, "student-lora")); err != nil {
			return run, err
		}
	}
	return run, nil
}

// jobAdapters is the folder of a job's LoRA adapters (peft's layout).
func jobAdapters(work string, seed uint64, job string) string {
	return filepath.Join(seedDir(work, seed), job+"-lora")
}

// jobBestAdapters is the folder of the adapters at the step whose
// validation FD was lowest (-watch).
func jobBestAdapters(work string, seed uint64, job string) string {
	return filepath.Join(seedDir(work, seed), job+"-best-lora")
}

// bestLabel names the rows of a job's validation-selected student.
func bestLabel(label string) string { return label + ", the validation's lowest checkpoint" }

// jobAverageAdapters is the folder of the moving average of a job's
// adapters (-adapter-ema).
func jobAverageAdapters(work string, seed uint64, job string) string {
	return filepath.Join(seedDir(work, seed), job+"-avg-lora")
}

// averageLabel names the rows of a job's averaged adapters.
func averageLabel(label string, decay float64) string {
	return fmt.Sprintf("%s, the adapters' moving average (%g)", label, decay)
}

// evalBest evaluates the job's samplers on the student whose validation
// FD was lowest: the teacher with those adapters merged.
func (o *experiment) evalBest(e *env, seed uint64, j job) ([]row, error) {
	return o.evalAdapters(e, jobBestAdapters(o.Work, seed, j.name), bestLabel(j.label), j.samplers)
}

// evalAdapters evaluates samplers on the teacher with the adapters of
// folder dir merged, each row named label and the sampler.
func (o *experiment) evalAdapters(e *env, dir, label string, samplers []sampler) ([]row, error) {
	u, err := loadStudent(o.teacherDir(), dir, o.Device)
	if err != nil {
		return nil, err
	}
	defer u.Close()
	var rows []row
	for _, sm := range samplers {
		r, err := o.eval(e.es, u, fmt.Sprintf("%s, %s", label, samplerLabel(sm)), sm, e.log)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// progressBase is where the job's i-th stage keeps its progress between
// commands (progress.go).
func progressBase(work string, seed uint64, job string, i int) string {
	return filepath.Join(seedDir(work, seed), fmt.Sprintf("%s.part%d", job, i+1))
}

// removeJobProgress deletes the progress of every stage of a job.
func removeJobProgress(work string, seed uint64, j job) error {
	var errs []error
	for i := range j.stages {
		errs = append(errs, removeProgress(progressBase(work, seed, j.name, i)))
	}
	return errors.Join(errs...)
}

func samplerLabel(sm sampler) string {
	switch sm.name {
	case "osv+tts":
		if sm.travel == travelSigma() {
			return "1 step + TTS"
		}
		return fmt.Sprintf("1 step + TTS (travel to σ %.3g)", sm.travel)
	case "osv+tts-fresh":
		return fmt.Sprintf("1 step + TTS with fresh noise (travel to σ %.3g)", sm.travel)
	case "osv":
		if sm.nfe == 1 {
			return "1 step"
		}
		return fmt.Sprintf("%d steps", sm.nfe)
	}
	return sm.name
}

// jobLabels are the labels of every job, the names their rows start with.
func jobLabels() []string {
	var ls []string
	for _, j := range (&experiment{}).jobs(0) {
		ls = append(ls, j.label)
	}
	return ls
}
