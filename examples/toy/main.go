// Command toy runs OSV end to end at a scale that fits a few minutes of one
// GPU, every stage through the library: a synthetic world of coloured
// squares bouncing in a box (package world), a small SVD-style UNet
// trained from scratch as the teacher (EDM objective, image-conditioned,
// guidance by conditioning dropout), OSV's stage 1 and stage 2 with a
// small DINOv2-style latent discriminator, the samplers, and an
// evaluation against the world's ground truth. It writes the results
// table (RESULTS.md), the teacher and the exported student, and GIFs.
//
//	go run -tags cuda ./examples/toy -device cuda -out .build/toy
//	go run ./examples/toy demo -model examples/toy/model -out demo.gif
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	if len(args) > 0 && args[0] == "demo" {
		return runDemo(args[1:], stderr)
	}
	fs := flag.NewFlagSet("toy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := defaultExperiment()
	fs.StringVar(&o.Out, "out", ".build/toy", "output folder: RESULTS.md, log.txt, GIFs, student/ (the merged student UNet)")
	fs.StringVar(&o.Work, "work", "", "folder for the teacher, checkpoints and the exported LoRA (default: -out)")
	fs.StringVar(&o.Device, "device", "cpu", "cpu, cuda or cuda:N")
	fs.IntVar(&o.TeacherSteps, "teacher-steps", o.TeacherSteps, "teacher training steps")
	fs.IntVar(&o.TeacherBatch, "teacher-batch", o.TeacherBatch, "teacher batch size")
	fs.IntVar(&o.Stage1Steps, "stage1-steps", o.Stage1Steps, "OSV stage-1 steps")
	fs.IntVar(&o.Stage2Steps, "stage2-steps", o.Stage2Steps, "OSV stage-2 steps")
	fs.IntVar(&o.Batch, "batch", o.Batch, "OSV batch size")
	fs.IntVar(&o.EvalClips, "eval-clips", o.EvalClips, "held-out clips per evaluation")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of everything")
	fs.BoolVar(&o.Quick, "quick", false, "tiny settings: a smoke test of every stage, not a result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.Quick {
		o = o.quick()
	}
	o.Command = "toy " + strings.Join(args, " ")
	return o.run(ctx, stdout, stderr)
}
