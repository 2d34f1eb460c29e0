// Command toy runs OSV end to end at a scale that fits a few minutes of one
// GPU, every stage through the library: a synthetic world of coloured
// squares bouncing in a box (package world), a small SVD-style UNet
// trained from scratch as the teacher (EDM objective, image-conditioned,
// guidance by conditioning dropout), OSV's stage 1 and stage 2 with a
// small DINOv2-style latent discriminator, the samplers, and an
// evaluation against the world's ground truth. It writes the results
// table (RESULTS.md), the teacher and the exported student, and GIFs.
//
// Stage 2 weighs the adversarial loss by 0.2 (-lambda-adv), twice the
// paper's 0.1, which is its own job (adv-0.1): over nine trainings each,
// the larger weight gave the lower median FD (docs/RESULTS.md, "The
// default weight").
//
// Every phase writes its results into -work as it finishes, and skips what
// is there, so the whole table can be built over several shorter commands:
//
//	go run -tags cuda ./examples/toy teacher -device cuda -work W -teacher-steps 6000 -teacher-budget 8m   # again until it finishes
//	go run -tags cuda ./examples/toy teacher -device cuda -work W2 -teacher-init examples/toy/teacher -teacher-steps 10000 -teacher-budget 8m   # train the committed teacher on
//	go run -tags cuda ./examples/toy teacher -device cuda -work W3 -teacher-init examples/toy/teacher -teacher-blocks 128,128 -teacher-autocast -teacher-steps 7000 -teacher-budget 8m   # at twice its widths, starting from its function
//	go run -tags cuda ./examples/toy student -device cuda -work W -seed 2 -jobs stage1,osv
//	go run -tags cuda ./examples/toy student -device cuda -work W -seed 2 -jobs osv,adv-0.1 -watch 50   # also keep and evaluate the checkpoint of the lowest validation FD
//	go run -tags cuda ./examples/toy student -device cuda -work W -seed 2 -jobs osv -adapter-ema 0.99   # also keep and evaluate the moving average of the student's adapters
//	go run ./examples/toy table -work W -out docs/toy
//	go run -tags cuda ./examples/toy -device cuda -out .build/toy   # every phase in turn
//	go run ./examples/toy demo -out demo.gif
//	go run ./examples/toy demo -check 16   # also measure 16 held-out clips against the demo's bar
//	go run -tags cuda ./examples/toy profile -device cuda                 # where a step's time goes
//	go run -tags cuda ./examples/toy profile -device cuda -graph -record  # the same with the steps recorded as CUDA graphs
//	go run -tags cuda ./examples/toy profile -device cuda -stage1 -record # stage 1 too
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "toy:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	phase := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		phase, args = args[0], args[1:]
	}
	switch phase {
	case "demo":
		return runDemo(args, stderr)
	case "profile":
		return runProfile(ctx, args, stdout, stderr)
	case "all", "teacher", "student", "table":
	default:
		return fmt.Errorf("unknown command %q: want teacher, student, table, demo, profile or none (every phase)", phase)
	}
	o, f, err := parseExperiment(phase, args, stderr)
	if err != nil {
		return err
	}
	seed, seeds, names := f.seed, f.seeds, f.names
	o.Command = strings.TrimSpace("toy " + strings.Join(append([]string{phase}, args...), " "))
	e, done, err := o.setup(stderr, "log.txt")
	if err != nil {
		return err
	}
	defer done()
	if phase == "all" || phase == "teacher" {
		if err := o.teacherPhase(ctx, e); err != nil {
			return err
		}
	}
	if phase == "all" || phase == "student" {
		for _, sd := range o.Seeds {
			if seed != 0 && sd != seed {
				continue
			}
			if err := o.seedPhase(ctx, e, sd, names); err != nil {
				return err
			}
		}
		if seed != 0 && !slices.Contains(o.Seeds, seed) {
			return fmt.Errorf("-seed %d is not one of -seeds %s", seed, seeds)
		}
	}
	if phase == "all" || phase == "table" {
		return o.tablePhase(stdout, e.log)
	}
	return nil
}

func parseSeeds(list string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("-seeds %q: want positive integers separated by commas", list)
		}
		out = append(out, v)
	}
	return out, nil
}

// jobNames are the student phase's jobs, in their order.
func jobNames() []string {
	var o experiment
	var names []string
	for _, j := range o.jobs(1) {
		names = append(names, j.name)
	}
	return names
}

// phaseFlags are the phase command's flags that are not settings of the
// experiment.
type phaseFlags struct {
	seed  uint64
	seeds string
	names []string
}

// parseExperiment reads a phase's flags into the experiment's settings.
func parseExperiment(phase string, args []string, stderr io.Writer) (o experiment, f phaseFlags, err error) {
	fs := flag.NewFlagSet("toy "+phase, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o = defaultExperiment()
	fs.StringVar(&o.Out, "out", ".build/toy", "output folder: RESULTS.md and the GIFs")
	fs.StringVar(&o.Work, "work", "", "folder of each phase's results, the teacher, the checkpoints and the student's adapters, for resuming (default: -out)")
	fs.StringVar(&o.Device, "device", "cpu", "cpu, cuda or cuda:N")
	fs.IntVar(&o.TeacherSteps, "teacher-steps", o.TeacherSteps, "teacher training steps")
	fs.DurationVar(&o.TeacherWall, "teacher-wall", 0, "train the teacher for about this long instead (steps set from the first 20)")
	fs.DurationVar(&o.TeacherBudget, "teacher-budget", 0, "stop the teacher's training after this long, keeping it in -work; the same command continues it")
	fs.IntVar(&o.TeacherBatch, "teacher-batch", o.TeacherBatch, "teacher batch size")
	fs.Float64Var(&o.TeacherLR, "teacher-lr", o.TeacherLR, "the teacher's peak learning rate (cosine decay to 0.1× of it)")
	fs.BoolVar(&o.TeacherAutocast, "teacher-autocast", false, "train the teacher with its forward pass under bfloat16 autocast (torch.Autocast; the weights stay float32)")
	fs.Float64Var(&o.TeacherEMA, "teacher-ema", 0, "keep as the teacher the moving average of its weights with this decay a step (0.999, say; 0: the last weights)")
	fs.Float64Var(&o.PMean, "p-mean", o.PMean, "the teacher's noise levels: ln σ ~ N(p-mean, p-std²)")
	fs.Float64Var(&o.PStd, "p-std", o.PStd, "see -p-mean")
	fs.StringVar(&o.TeacherInit, "teacher-init", "", "start the teacher's training from this UNet folder (examples/toy/teacher, say) instead of random weights")
	blocks := fs.String("teacher-blocks", "64,64", "the teacher's two block widths (multiples of 32); -teacher-init's must match them, or be half of them (its weights are then widened, each channel doubled, so that the wider teacher starts computing what it computes)")
	fs.BoolVar(&o.TeacherGraph, "teacher-graph", true, "on CUDA, record the teacher's step once as a CUDA graph and replay it (its noise is then drawn on the device)")
	fs.BoolVar(&o.Stage2Graphs, "stage2-graphs", true, "on CUDA with -stage2-record=false, replay stage 2's teacher and θ⁻ calls from recorded CUDA graphs (osv.TrainConfig.GraphDenoisers)")
	fs.BoolVar(&o.Stage2Record, "stage2-record", true, "on CUDA, record stage 2's whole step once as a CUDA graph and replay it (osv.TrainConfig.GraphStep)")
	fs.BoolVar(&o.Stage1Record, "stage1-record", true, "on CUDA, record stage 1's whole step once as a CUDA graph and replay it (osv.TrainConfig.GraphStep; the pixel ablation's stage 1 runs eagerly)")
	fs.Int64Var(&o.ShortAttention, "short-attn", 32, "on CUDA, attention over at most this many tokens (the temporal layers' 8 frames) in its math form instead of a fused kernel (torch.SetShortAttention); 0: fused kernels always")
	fs.BoolVar(&o.FusedLayerNorm, "fused-ln", false, "on CUDA, LayerNorm as the bridge's fused kernel where autograd records nothing (torch.SetFusedLayerNorm): stage 2's teacher and θ⁻ calls and the evaluations")
	fs.Float64Var(&o.MaxGuidance, "max-guidance", o.MaxGuidance, "the teacher's guidance on the last frame (it rises linearly from 1 on the first), in its samples and in stage 2's solver")
	guidances := fs.String("teacher-guidance-rows", "", "also evaluate the teacher at 25 steps with these last-frame guidances, comma-separated (3,4, say), each a row of its own")
	fs.IntVar(&o.Stage1Steps, "stage1-steps", o.Stage1Steps, "OSV stage-1 steps")
	fs.IntVar(&o.Stage2Steps, "stage2-steps", o.Stage2Steps, "OSV stage-2 steps")
	fs.IntVar(&o.Batch, "batch", o.Batch, "OSV batch size")
	fs.IntVar(&o.EvalClips, "eval-clips", o.EvalClips, "held-out clips per evaluation")
	fs.Float64Var(&o.LambdaAdv, "lambda-adv", o.LambdaAdv, "stage 2's adversarial weight λ_adv (the paper's is 0.1; the adv-* jobs set their own)")
	fs.IntVar(&o.Watch, "watch", 0, "student: every this many stage-2 steps, log the student's FD (1 step + TTS) on -watch-clips validation clips, keep the adapters of the lowest in seed-N/JOB-best-lora and evaluate them as rows of their own (0: never)")
	fs.IntVar(&o.WatchClips, "watch-clips", o.WatchClips, "validation clips for -watch (drawn apart from the held-out ones)")
	fs.Float64Var(&o.AdapterEMA, "adapter-ema", 0, "student: in stage 2 also keep the moving average of the student's adapters with this decay a step (0.99, say), in seed-N/JOB-avg-lora, and evaluate it as rows of its own (0: none)")
	seeds := fs.String("seeds", "1,2,3", "the students' seeds (the teacher takes the first)")
	seed := fs.Uint64("seed", 0, "student: the one seed to run (default: every -seeds)")
	jobs := fs.String("jobs", "", "student: the jobs to run, comma-separated (default: all; "+strings.Join(jobNames(), ", ")+")")
	fs.BoolVar(&o.Quick, "quick", false, "tiny settings: a smoke test of every phase, not a result")
	if err = fs.Parse(args); err != nil {
		return o, f, err
	}
	if fs.NArg() > 0 {
		return o, f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Seeds, err = parseSeeds(*seeds); err != nil {
		return o, f, err
	}
	if o.TeacherBlocks, err = parseWidths("-teacher-blocks", *blocks); err != nil {
		return o, f, err
	}
	if !guidanceOK(o.MaxGuidance) {
		return o, f, fmt.Errorf("-max-guidance %g: want a finite value of at least 1", o.MaxGuidance)
	}
	if o.GuidanceRows, err = parseGuidances(*guidances, o.MaxGuidance); err != nil {
		return o, f, err
	}
	if !(o.LambdaAdv > 0) || math.IsInf(o.LambdaAdv, 0) {
		return o, f, fmt.Errorf("-lambda-adv %g: want a finite weight above 0 (the no-adv job trains without the adversarial loss)", o.LambdaAdv)
	}
	if o.Watch < 0 || o.Watch > 0 && o.WatchClips < 2 {
		return o, f, fmt.Errorf("-watch %d -watch-clips %d: want a step interval of at least 0 and, when it is set, at least 2 clips", o.Watch, o.WatchClips)
	}
	if !(o.AdapterEMA >= 0 && o.AdapterEMA < 1) {
		return o, f, fmt.Errorf("-adapter-ema %g: want a decay in [0, 1) (0: no average)", o.AdapterEMA)
	}
	f.seed, f.seeds = *seed, *seeds
	if *jobs != "" {
		f.names = strings.Split(*jobs, ",")
		for _, n := range f.names {
			if !contains(jobNames(), n) {
				return o, f, fmt.Errorf("-jobs: unknown job %q (want %s)", n, strings.Join(jobNames(), ", "))
			}
		}
	}
	if o.Quick {
		o = o.quick()
	}
	return o, f, nil
}

// settingsOf parses a recorded command line ("toy student -seed 2 …", as a
// run file keeps it) back into the settings that command ran with.
func settingsOf(command string) (experiment, error) {
	args := strings.Fields(command)
	if len(args) > 0 && args[0] == "toy" {
		args = args[1:]
	}
	phase := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		phase, args = args[0], args[1:]
	}
	o, _, err := parseExperiment(phase, args, io.Discard)
	if err != nil {
		return o, fmt.Errorf("recorded command %q: %w", command, err)
	}
	return o, nil
}

// guidanceOK reports whether g is a guidance scale the flags accept: finite
// and at least 1.
func guidanceOK(g float64) bool { return g >= 1 && !math.IsInf(g, 0) }

// parseGuidances reads -teacher-guidance-rows: finite guidances of at
// least 1, none of them -max-guidance (whose rows the teacher has anyway)
// nor repeated.
func parseGuidances(list string, maxGuidance float64) ([]float64, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var gs []float64
	for _, f := range strings.Split(list, ",") {
		g, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !guidanceOK(g) {
			return nil, fmt.Errorf("-teacher-guidance-rows %q: want finite guidances of at least 1, comma-separated", list)
		}
		if g == maxGuidance || slices.Contains(gs, g) {
			return nil, fmt.Errorf("-teacher-guidance-rows %q: %g is -max-guidance's or given twice", list, g)
		}
		gs = append(gs, g)
	}
	return gs, nil
}
