package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// table is the results table in Markdown.
func (o *experiment) table() string {
	var b strings.Builder
	truth := o.rows[0].Motion
	fmt.Fprintf(&b, "| model | NFE | FD ↓ | speed (px/frame) | speed W1 ↓ | smoothness | persistence | ms per clip |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|\n")
	for _, r := range o.rows {
		nfe, ms := "", ""
		if r.NFE > 0 {
			nfe, ms = fmt.Sprint(r.NFE), fmt.Sprintf("%.2f", r.MSPerClip)
		}
		fmt.Fprintf(&b, "| %s | %s | %.3f | %.2f | %.2f | %.2f | %.2f | %s |\n",
			r.Name, nfe, r.FD, r.Motion.Speed, r.SpeedW1, r.Motion.Smoothness, r.Motion.Persistence, ms)
	}
	fmt.Fprintf(&b, "\nThe true clips: speed %.2f px/frame, smoothness %.2f, persistence %.2f.\n", truth.Speed, truth.Smoothness, truth.Persistence)
	return b.String()
}

// find returns the FD of the row with this name.
func (o *experiment) find(name string) (float64, bool) {
	for _, r := range o.rows {
		if r.Name == name {
			return r.FD, true
		}
	}
	return math.NaN(), false
}

// claim is one ordering the paper reports, tested on FD (lower is better).
type claim struct {
	text          string
	better, worse string
	paper         string
}

func (o *experiment) claims() []claim {
	g := fmt.Sprintf("%g", o.MaxGuidance)
	tts := func(v string) string { return v + ", 1 step + TTS" }
	return []claim{
		{"the teacher at 25 steps beats OSV at 1 step + TTS", "teacher, 25 steps (guidance 1→" + g + ")", tts("OSV"), "156.94 < 171.15"},
		{"OSV 1 step + TTS beats OSV 2 steps", tts("OSV"), "OSV, 2 steps", "171.15 < 181.95"},
		{"OSV 2 steps beats OSV 1 step", "OSV, 2 steps", "OSV, 1 step", "181.95 < 335.36"},
		{"OSV 1 step beats the teacher at 1 step", "OSV, 1 step", "teacher, 1 steps (guidance 1→" + g + ")", "one-step baselines ≥ 425.68"},
		{"k = 5 beats k = 1 at the same wall time", tts("OSV"), tts("OSV with k = 1 (same stage-2 wall time)"), "171.15 < 332.25"},
		{"stage 1 helps", tts("OSV"), tts("OSV without stage 1"), "171.15 < 221.75"},
		{"stage 2 helps", tts("OSV"), tts("OSV without stage 2 (stage 1 only)"), "171.15 < 234.13"},
		{"the adversarial loss helps", tts("OSV"), tts("OSV without adversarial loss"), "171.15 < 405.41"},
		{"the latent discriminator beats the pixel one", tts("OSV"), tts("OSV with the pixel discriminator (decoded frames)"), "171.15 < 232.25"},
	}
}

// report is RESULTS.md.
func (o *experiment) report() string {
	var b strings.Builder
	w := o.World
	fmt.Fprintf(&b, "# Results: OSV end to end at toy scale\n\n")
	if o.Quick {
		fmt.Fprintf(&b, "**Smoke-test settings (-quick): these numbers mean nothing.**\n\n")
	}
	fmt.Fprintf(&b, "Every number below was printed by one run of examples/toy, `%s`, on %s, started %s, in %s.\n",
		o.Command, o.Device, o.started.UTC().Format(time.RFC3339), time.Since(o.started).Round(time.Second))
	fmt.Fprintf(&b, "Seeds are fixed (`-seed %d`).\n\n", o.Seed)
	fmt.Fprintf(&b, "## Setting\n\n")
	fmt.Fprintf(&b, "- **World** (`examples/toy/world`): %d×%d RGB, %d frames; %d–%d coloured squares (sides %d–%d px) moving at %g–%g px/frame and bouncing off the walls. The first frame is the conditioning image: the speed and direction are not in it, so the model must produce a plausible motion.\n",
		w.Size, w.Size, w.Frames, w.MinObjects, w.MaxObjects, w.MinSide, w.MaxSide, w.MinSpeed, w.MaxSpeed)
	fmt.Fprintf(&b, "- **Latents**: no VAE; a frame is pixel-unshuffled by %d into %d channels of %d×%d (lossless; decoding is the pixel shuffle).\n", factor, latentChannel, w.Size/factor, w.Size/factor)
	fmt.Fprintf(&b, "- **Teacher**: SVD's UNet code with a small config (blocks 32, 64; one layer each; 2 heads), trained from random weights for %d steps at batch %d with the EDM objective (SVD's preconditioning, ln σ ~ N(0.7, 1.6²), conditioning dropped 10%% of the time), AdamW %g with cosine decay to 0.1×; final training loss %.4f. Sampled with guided Euler (guidance 1→%g over the frames).\n",
		o.TeacherSteps, o.TeacherBatch, o.TeacherLR, o.teacher, o.MaxGuidance)
	fmt.Fprintf(&b, "- **OSV**: `osv.Trainer` with LoRA rank %d on the paper's targets, AdamW %g (discriminator %g), batch %d, the paper's other defaults (grid of 100 Karras levels over [0.002, 700], λ_adv 0.1, pseudo-Huber c 0.001, EMA 0.95); stage 1 %d steps, stage 2 %d steps with k = 5 unless stated.\n",
		o.Rank, o.LR, o.DiscLR, o.Batch, o.Stage1Steps, o.Stage2Steps)
	fmt.Fprintf(&b, "- **Discriminator**: the library's DINOv2 code with a small config (4 layers, width 96, 8×8 patches), randomly initialised and frozen; trainable latent upsampler, spatial and temporal heads with spectral norm. The pixel ablation judges the decoded frames (`Trainer.Decode`) instead.\n")
	fmt.Fprintf(&b, "- **Evaluation** (no download): %d held-out clips generated from their first frames with fixed noise. FD is the Fréchet distance between the generated and the true clips' `world.Features` (appearance and motion statistics by colour tracking; each feature standardised by the true clips' spread). Speed, smoothness (mean |second difference| of the tracked centres) and persistence (how often an object of the first frame is still found) come from `world.MeasureMotion`; speed W1 is the Wasserstein distance between the per-clip speeds generated and true. The first two rows calibrate FD: an independent sample of true clips (the floor) and the first frame held still (no motion).\n\n",
		o.EvalClips)
	fmt.Fprintf(&b, "## Wall time of each stage\n\n| stage | steps | wall time | steps/s | peak GPU memory |\n|---|---|---|---|---|\n")
	for _, s := range o.stages {
		mem := "n/a"
		if s.PeakGiB > 0 {
			mem = fmt.Sprintf("%.2f GiB", s.PeakGiB)
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f s | %.2f | %s |\n", s.Name, s.Steps, s.Wall.Seconds(), float64(s.Steps)/s.Wall.Seconds(), mem)
	}
	fmt.Fprintf(&b, "\n## The table\n\n%s\n", o.table())
	fmt.Fprintf(&b, "## The paper's ordering, tested (FD, lower is better)\n\n| hypothesis | ours | paper (FVD) | holds |\n|---|---|---|---|\n")
	for _, c := range o.claims() {
		a, okA := o.find(c.better)
		z, okB := o.find(c.worse)
		verdict := "not measured"
		if okA && okB {
			verdict = "no"
			if a < z {
				verdict = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %.3f vs %.3f | %s | %s |\n", c.text, a, z, c.paper, verdict)
	}
	b.WriteString("\n")
	return b.String()
}
