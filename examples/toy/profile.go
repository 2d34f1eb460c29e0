package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// runProfile times the teacher's training step and OSV's stage-2 step at
// the experiment's sizes (random weights), then runs a few more of each
// under libtorch's profiler and reports how much of a step's wall time the
// GPU spends in kernels, and the kernels that take it: whether a step is
// bound by the GPU's work or by the host's launching of it.
func runProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("toy profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	device := fs.String("device", "cuda", "cuda or cuda:N (cpu: times only)")
	out := fs.String("out", ".build/toy-profile", "folder for the traces and kernel tables")
	widths := fs.String("widths", "64,64", "the teacher's block widths")
	tb := fs.Int("teacher-batch", 128, "teacher batch size")
	sb := fs.Int("batch", 32, "stage-2 batch size")
	steps := fs.Int("steps", 20, "timed steps of each, after 5 untimed")
	foreach := fs.Bool("foreach", false, "the teacher's optimiser and gradient clip over all parameters at once (torch.AdamW.Foreach)")
	stage2 := fs.Bool("stage2", true, "profile the stage-2 step too")
	stage1 := fs.Bool("stage1", false, "profile the stage-1 step too (after stage 2's)")
	record := fs.Bool("record", false, "stage 2's (and with -stage1, stage 1's) whole step recorded once as a CUDA graph and replayed (osv.TrainConfig.GraphStep)")
	autocast := fs.Bool("autocast", false, "the teacher's forward pass under bfloat16 autocast (torch.Autocast)")
	fusedLN := fs.Bool("fused-ln", false, "LayerNorm as the bridge's fused kernel where autograd records nothing (torch.SetFusedLayerNorm): stage 2's frozen calls")
	shortAttn := fs.Int64("short-attn", 0, "attention over at most this many tokens in its math form (torch.SetShortAttention; 0: fused kernels always)")
	graph := fs.Bool("graph", false, "the teacher's step recorded once as a CUDA graph and replayed, and stage 2's frozen denoisers replayed from graphs (torch.CaptureGraph)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w, err := parseWidths("-widths", *widths)
	if err != nil {
		return err
	}
	dev, err := torch.ParseDevice(*device)
	if err != nil {
		return err
	}
	if dev.CUDA {
		if err := torch.SetTF32(true); err != nil {
			return err
		}
	}
	if err := torch.SetShortAttention(*shortAttn); err != nil {
		return err
	}
	defer torch.SetShortAttention(0)
	if err := torch.SetFusedLayerNorm(*fusedLN); err != nil {
		return err
	}
	defer torch.SetFusedLayerNorm(false)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	wc := world.DefaultConfig()
	cfg := teacherUNet(wc, w)
	u, err := unet.New(cfg, unet.WithDevice(*device), unet.WithSeed(1))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "teacher blocks %v: %.3g parameters, teacher batch %d (foreach optimiser %v, graph %v, short attention %d, autocast %v), stage-2 batch %d, %s\n", w, float64(u.NumParams()), *tb, *foreach, *graph, *shortAttn, *autocast, *sb, *device)
	dir := filepath.Join(*out, "teacher")
	u, err = saveBF16(u, dir, *device)
	if err != nil {
		return err
	}
	// The teacher: trainTeacher's own step, as many times as asked.
	tstep, err := teacherStepper(u, wc, *tb, *foreach, *graph, *autocast)
	if err != nil {
		u.Close()
		return err
	}
	err = profileCase(stdout, dev, filepath.Join(*out, "teacher-step"), fmt.Sprintf("teacher step, batch %d", *tb), *tb, *steps, tstep.step)
	tstep.close()
	u.Close()
	if err != nil {
		return err
	}
	// Stage 2 with k = 5 from the same teacher, then stage 1.
	do := distillOptions{Batch: *sb, Rank: 16, LR: 5e-4, DiscLR: 2e-4, MaxGuidance: 2, Seed: 1, Device: *device, Graphs: *graph, Foreach: *foreach, Record: *record, Record1: *record}
	for _, c := range []struct {
		on    bool
		stage int
		name  string
	}{{*stage2, 2, "stage-2 step (k = 5)"}, {*stage1, 1, "stage-1 step"}} {
		if !c.on {
			continue
		}
		if err := profileStage(ctx, stdout, dev, dir, *out, wc, c.stage, c.name, do, *steps); err != nil {
			return err
		}
	}
	return nil
}

// profileStage times one OSV stage's training step from the teacher in dir.
func profileStage(ctx context.Context, stdout io.Writer, dev torch.Device, dir, out string, wc world.Config, stage int, name string, do distillOptions, steps int) error {
	st, _, err := runStage(ctx, dir, wc, stageRun{Stage: stage, Steps: 0, K: 5}, do, io.Discard)
	if err != nil {
		return err
	}
	defer st.Close()
	g, err := torch.NewGenerator(9)
	if err != nil {
		return err
	}
	defer g.Close()
	r := rand.New(rand.NewPCG(9, 9))
	return profileCase(stdout, dev, filepath.Join(out, fmt.Sprintf("stage%d-step", stage)), fmt.Sprintf("%s, batch %d", name, do.Batch), do.Batch, steps, func() error {
		_, err := trainStep(st.trainer, wc, do.Batch, r, g, dev)
		return err
	})
}

// stepper is the teacher's training step on a fixed model and optimiser.
type stepper struct {
	step  func() error
	close func()
}

func teacherStepper(u *unet.Model, wc world.Config, batch int, foreach, graph, autocast bool) (*stepper, error) {
	o := teacherOptions{Batch: batch, LR: 1e-4, PMean: -0.5, PStd: 1.4, DropCond: 0.1, Foreach: foreach, Graph: graph, Autocast: autocast}
	tt, err := newTeacherTrainer(u, wc, o, 3)
	if err != nil {
		return nil, err
	}
	feed := newTeacherFeed(wc, o, rand.New(rand.NewPCG(3, 3)))
	return &stepper{
		step: func() error {
			_, err := tt.step(feed.next(), o.LR)
			return err
		},
		close: func() {
			feed.close()
			tt.close()
		},
	}, nil
}

// profileCase times steps of fn (after 5 untimed), then profiles 5 more
// and prints the wall time, the GPU's kernel time per step and its top
// kernels.
func profileCase(w io.Writer, dev torch.Device, base, name string, batch, steps int, fn func() error) error {
	sync := func() error {
		if dev.CUDA {
			return torch.Synchronize(dev)
		}
		return nil
	}
	for range 5 {
		if err := fn(); err != nil {
			return err
		}
	}
	if err := sync(); err != nil {
		return err
	}
	t0 := time.Now()
	for range steps {
		if err := fn(); err != nil {
			return err
		}
	}
	if err := sync(); err != nil {
		return err
	}
	per := time.Since(t0).Seconds() / float64(steps)
	fmt.Fprintf(w, "%s: %.1f ms a step, %.2f steps/s, %.0f samples/s (%d steps)\n", name, per*1000, 1/per, float64(batch)/per, steps)
	if !dev.CUDA {
		return nil
	}
	const profiled = 5
	if err := torch.StartProfiler(dev); err != nil {
		return err
	}
	t1 := time.Now()
	for range profiled {
		if err := fn(); err != nil {
			return err
		}
	}
	if err := sync(); err != nil {
		return err
	}
	wall := time.Since(t1).Seconds() / profiled
	if err := torch.StopProfiler(base + ".json"); err != nil {
		return err
	}
	ks, err := torch.DeviceTimes(base + ".json")
	if err != nil {
		return err
	}
	var total float64
	var launches int
	for _, k := range ks {
		total += k.US
		launches += k.Calls
	}
	gpu := total / 1e6 / profiled
	fmt.Fprintf(w, "  under the profiler: %.1f ms a step of wall time, %.1f ms of it in GPU kernels and copies (%.0f%%), %d launches a step\n",
		wall*1000, gpu*1000, 100*gpu/wall, launches/profiled)
	f, err := os.Create(base + ".txt")
	if err != nil {
		return err
	}
	defer f.Close()
	out := io.MultiWriter(w, f)
	fmt.Fprintf(out, "  %9s %6s %7s  %s\n", "ms/step", "share", "calls", "kernel")
	for i, k := range ks {
		if i == 15 {
			break
		}
		n := k.Name
		if len(n) > 110 {
			n = n[:110] + "…"
		}
		fmt.Fprintf(out, "  %9.2f %5.1f%% %7d  %s\n", k.US/1000/profiled, 100*k.US/max(total, 1e-9), k.Calls/profiled, n)
	}
	return nil
}
