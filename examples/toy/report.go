package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// stat is one measure of one row over the seeds.
type stat struct{ vals []float64 }

func (s stat) mean() float64 { return mean(s.vals) }
func (s stat) min() float64  { return slices.Min(s.vals) }
func (s stat) max() float64  { return slices.Max(s.vals) }

// sd is the sample standard deviation (0 for one value).
func (s stat) sd() float64 {
	if len(s.vals) < 2 {
		return 0
	}
	m := s.mean()
	var q float64
	for _, v := range s.vals {
		q += (v - m) * (v - m)
	}
	return math.Sqrt(q / float64(len(s.vals)-1))
}

func mean(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

// format writes mean ± sd over the seeds, or the value alone for one.
func (s stat) format(prec int) string {
	if len(s.vals) == 1 {
		return fmt.Sprintf("%.*f", prec, s.vals[0])
	}
	return fmt.Sprintf("%.*f ± %.*f", prec, s.mean(), prec, s.sd())
}

// aggRow is a table row over the seeds that produced it.
type aggRow struct {
	Name                                           string
	NFE                                            int
	Seeds                                          []uint64
	FD, Speed, W1, Smooth, Persist, Background, MS stat
	terms                                          [][]float64 // each seed's FD terms by feature, where its row has them
}

// largestTerms names the n features whose FD terms, averaged over the
// seeds that have them, are largest, largest first ("" without terms).
func (a *aggRow) largestTerms(n int) string {
	if len(a.terms) == 0 {
		return ""
	}
	avg := make([]float64, len(a.terms[0]))
	for _, t := range a.terms {
		for j := range avg {
			if j < len(t) {
				avg[j] += t[j] / float64(len(a.terms))
			}
		}
	}
	return largestNamed(avg, n)
}

// results is everything the work folder holds, in the table's order.
type results struct {
	teacher runFile
	runs    []runFile
	missing []string // the jobs no seed has run
	rows    []*aggRow
	byName  map[string]*aggRow
}

func (o *experiment) collect() (*results, error) {
	res := &results{byName: map[string]*aggRow{}}
	t, ok, err := readRun(filepath.Join(o.Work, "teacher.json"))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no teacher.json in %s: run the teacher phase first", o.Work)
	}
	res.teacher = t
	res.add(t)
	for _, j := range o.jobs(1) {
		ran := false
		for _, seed := range o.Seeds {
			r, ok, err := readRun(jobFile(o.Work, seed, j.name))
			if err != nil {
				return nil, err
			}
			if ok {
				res.runs = append(res.runs, r)
				res.add(r)
				ran = true
			}
		}
		if !ran {
			res.missing = append(res.missing, j.name)
		}
	}
	return res, nil
}

func (res *results) add(r runFile) {
	for _, x := range r.Rows {
		a := res.byName[x.Name]
		if a == nil {
			a = &aggRow{Name: x.Name, NFE: x.NFE}
			res.byName[x.Name] = a
			res.rows = append(res.rows, a)
		}
		a.Seeds = append(a.Seeds, r.Seed)
		a.FD.vals = append(a.FD.vals, x.FD)
		a.Speed.vals = append(a.Speed.vals, x.Motion.Speed)
		a.W1.vals = append(a.W1.vals, x.SpeedW1)
		a.Smooth.vals = append(a.Smooth.vals, x.Motion.Smoothness)
		a.Persist.vals = append(a.Persist.vals, x.Motion.Persistence)
		a.Background.vals = append(a.Background.vals, x.Background)
		a.MS.vals = append(a.MS.vals, x.MSPerClip)
		if len(x.FDTerms) > 0 {
			a.terms = append(a.terms, x.FDTerms)
		}
	}
}

// tablePhase writes RESULTS.md and the GIFs into Out and prints the table.
func (o *experiment) tablePhase(stdout, log io.Writer) error {
	res, err := o.collect()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	if o.Out != o.Work {
		for _, f := range []string{"ground-truth.gif", "teacher-25-steps.gif", "osv-1-step.gif", "osv-1-step-tts.gif"} {
			b, err := os.ReadFile(filepath.Join(o.Work, f))
			if err != nil {
				continue // not made yet
			}
			if err := os.WriteFile(filepath.Join(o.Out, f), b, 0o644); err != nil {
				return err
			}
		}
	}
	path := filepath.Join(o.Out, "RESULTS.md")
	if err := os.WriteFile(path, []byte(o.report(res)), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, res.table())
	fmt.Fprintf(log, "wrote %s\n", path)
	return nil
}

// table is the results table in Markdown.
func (res *results) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| model | NFE | seeds | FD ↓ | speed (px/frame) | speed W1 ↓ | smoothness | persistence | background ↓ | ms per clip | FD's largest terms |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.rows {
		nfe, ms := "", ""
		if r.NFE > 0 {
			nfe, ms = fmt.Sprint(r.NFE), fmt.Sprintf("%.2f", r.MS.mean())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, nfe, len(r.Seeds),
			r.FD.format(1), r.Speed.format(2), r.W1.format(2), r.Smooth.format(2), r.Persist.format(3), r.Background.format(3), ms, r.largestTerms(2))
	}
	return b.String()
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
		{"the teacher at 25 steps beats OSV at 1 step + TTS", "teacher, 25 steps (guidance 1→" + g + ")", tts(labelOSV), "156.94 < 171.15"},
		{"OSV 1 step + TTS beats OSV 2 steps", tts(labelOSV), labelOSV + ", 2 steps", "171.15 < 181.95"},
		{"OSV 2 steps beats OSV 1 step", labelOSV + ", 2 steps", labelOSV + ", 1 step", "181.95 < 335.36"},
		{"OSV 1 step beats the teacher at 1 step", labelOSV + ", 1 step", "teacher, 1 steps (guidance 1→" + g + ")", "one-step baselines ≥ 425.68"},
		{"k = 5 beats k = 1 at the same wall time", tts(labelOSV), tts(labelK1), "171.15 < 332.25"},
		{"stage 1 helps", tts(labelOSV), tts(labelNoStage1), "171.15 < 221.75"},
		{"stage 2 helps", tts(labelOSV), tts(labelStage1), "171.15 < 234.13"},
		{"the adversarial loss helps", tts(labelOSV), tts(labelNoAdv), "171.15 < 405.41"},
		{"the latent discriminator beats the pixel one", tts(labelOSV), tts(labelPixel), "171.15 < 232.25"},
	}
}

// chosen is the row a hypothesis reads for the named row: that of the
// checkpoint the validation chose where the table has one, the named row
// itself otherwise.
func (res *results) chosen(name string) *aggRow {
	label := ""
	for _, l := range jobLabels() { // the longest label the name starts with
		if strings.HasPrefix(name, l+", ") && len(l) > len(label) {
			label = l
		}
	}
	if label != "" {
		if r := res.byName[bestLabel(label)+strings.TrimPrefix(name, label)]; r != nil {
			return r
		}
	}
	return res.byName[name]
}

// chosenMark flags a row of a validation-chosen checkpoint.
func chosenMark(r *aggRow) string {
	if strings.Contains(r.Name, bestLabel("")+", ") {
		return " †"
	}
	return ""
}

// verdict compares two rows over their seeds: "yes" when every value of
// the better row is below every value of the worse, "reversed" for the
// opposite, "within the spread" otherwise.
func verdict(a, z *aggRow) string {
	switch {
	case a.FD.max() < z.FD.min():
		return "yes"
	case a.FD.min() > z.FD.max():
		return "reversed"
	}
	return "within the spread"
}

// report is RESULTS.md.
func (o *experiment) report(res *results) string {
	var b strings.Builder
	w := o.World
	fmt.Fprintf(&b, "# Results: OSV end to end at toy scale\n\n")
	if o.Quick {
		fmt.Fprintf(&b, "**Smoke-test settings (-quick): these numbers mean nothing.**\n\n")
	}
	from, continued := strings.CutPrefix(teacherStart(res.teacher), "from the weights in ")
	asIs := continued && firstSteps(res.teacher) == 0 // a teacher evaluated, not trained here
	shared := fmt.Sprintf("the teacher is shared, and its training's data seed was %d", res.teacher.Seed)
	if asIs {
		shared = "the teacher, " + from + " as it is, is shared"
	}
	fmt.Fprintf(&b, "Every number below was printed by examples/toy, in the phases listed under \"Commands\", on %s; the table is `toy table` over the work folder. Each student row gives the mean ± the sample standard deviation over the seeds named in its `seeds` column (the seeds of the student trainings; %s); the held-out clips and the sampling noise are the same for every row.\n\n", res.teacher.Device, shared)
	fmt.Fprintf(&b, "## Setting\n\n")
	// The settings each phase ran with, which may differ from this
	// command's.
	t, ok := res.teacher.settings()
	if !ok {
		t = *o
	}
	st, same := o.studentSettings(res)
	fmt.Fprintf(&b, "- **World** (`examples/toy/world`): %d×%d RGB, %d frames; %d–%d coloured squares (sides %d–%d px) moving at %g–%g px/frame and bouncing off the walls. The first frame is the conditioning image: the speed and direction are not in it, so the model must produce a plausible motion.\n",
		w.Size, w.Size, w.Frames, w.MinObjects, w.MaxObjects, w.MinSide, w.MaxSide, w.MinSpeed, w.MaxSpeed)
	fmt.Fprintf(&b, "- **Latents**: no VAE; a frame is centred and scaled, (p − (%g))/%g, the world's pixel mean and deviation, then pixel-unshuffled by %d into %d channels of %d×%d (lossless; decoding is the pixel shuffle and the inverse map).\n",
		pixelMean, pixelStd, factor, latentChannel, w.Size/factor, w.Size/factor)
	bl := t.blocks()
	teacherArch := fmt.Sprintf("SVD's UNet code with a small config (blocks %d, %d over the %%d-channel latent; one layer each; 2 heads; stored with bfloat16 weights)", bl[0], bl[1])
	if asIs {
		fmt.Fprintf(&b, "- **Teacher**: "+teacherArch+", the weights in %s as they are, not trained further here%s. Sampled with guided Euler over %d Karras levels in [%g, %g] (guidance 1→%g over the frames).\n",
			latentChannel, from, readmeNote(from), 25, sigmaMin, sigmaMax, t.MaxGuidance)
	} else {
		fmt.Fprintf(&b, "- **Teacher**: "+teacherArch+", trained %s for %d steps at batch %d with the EDM objective (SVD's preconditioning, σ_d = 1; ln σ ~ N(%g, %g²); conditioning dropped 10%% of the time), AdamW %g with cosine decay to 0.1×; final training loss %.4f. Sampled with guided Euler over %d Karras levels in [%g, %g] (guidance 1→%g over the frames).\n",
			latentChannel, teacherStart(res.teacher), firstSteps(res.teacher), t.TeacherBatch, t.PMean, t.PStd, t.TeacherLR, res.teacher.Loss, 25, sigmaMin, sigmaMax, t.MaxGuidance)
		if continued {
			fmt.Fprintf(&b, "  Its starting weights, from %s, were trained before it%s.\n", from, readmeNote(from))
		}
		if t.TeacherEMA > 0 {
			fmt.Fprintf(&b, "  The teacher kept is the moving average of its weights (decay %g a step, starting at its first weights); the row \"teacher's last weights\" samples the last step's weights instead.\n", t.TeacherEMA)
		}
	}
	fmt.Fprintf(&b, "- **OSV**: `osv.Trainer` with LoRA rank %d on the paper's targets, AdamW %g (discriminator %g), batch %d, a grid of 100 Karras levels over [%g, %g], λ_adv %s and the paper's other defaults (λ(σ) = 1, pseudo-Huber c 0.001, EMA 0.95, the discriminator's real = the teacher's last estimate); stage 1 %d steps, stage 2 %d steps with k = 5 unless stated. k = 1 trains while the seed's OSV run trains, on the same machine, and stops when it ends (a k = 1 run started after OSV had finished takes OSV's recorded wall time instead).\n",
		st.Rank, st.LR, st.DiscLR, st.Batch, sigmaMin, sigmaMax, lambdaAdvNote(st.lambdaAdv()), st.Stage1Steps, st.Stage2Steps)
	if st.Watch > 0 {
		fmt.Fprintf(&b, "- **Checkpoint choice**: every %d stage-2 steps (and after the last) the student's FD, 1 step + TTS, is read on %d validation clips drawn apart from the held-out ones; the adapters of the lowest reading are kept beside the last step's, and the rows \"…, %s\" evaluate them on the held-out clips like any other row. The last step's rows are reported as well. Where both exist, the hypotheses below compare the chosen checkpoints: choosing one on clips the table does not use is part of the training recipe, as early stopping is.\n",
			st.Watch, st.WatchClips, strings.TrimPrefix(bestLabel(""), ", "))
	}
	for _, d := range res.adapterEMAs() {
		fmt.Fprintf(&b, "- **Averaged adapters**: stage 2 also keeps the moving average of the student's LoRA adapters (decay %g a step, starting at stage 2's first adapters; the loss never reads it, unlike θ⁻, OSV's 0.95 average), and the rows \"%s, …\" sample the teacher with it merged, on the same clips and noise as the last step's rows.\n",
			d, averageLabel("…", d))
	}
	if !same {
		fmt.Fprintf(&b, "  The student runs did not all use these settings: each one's command is under \"Commands\".\n")
	}
	fmt.Fprintf(&b, "- **Discriminator**: the library's DINOv2 code with a small config (4 layers, width 96, 8×8 patches). No pretrained DINOv2 of that size exists, so the backbone is randomly initialised and frozen: its features are random projections, and the trainable latent upsampler and the spatial and temporal heads (spectral norm) do the learning. The pixel ablation judges the decoded frames (`Trainer.Decode`) instead.\n")
	fmt.Fprintf(&b, "- **Samplers**: \"1 step\" is one consistency step at σ_max = %g; \"1 step + TTS\" travels back to σ %.3g (the middle of the 3-level Karras schedule) with the noise the first step implies and solves again; the other travel levels are those of the 4-level schedule; \"2 steps\" is the same as TTS with fresh noise at σ %.3g.\n",
		sigmaMax, travelSigma(), travelSigma())
	fmt.Fprintf(&b, "- **Evaluation** (no download): %d held-out clips generated from their first frames with fixed noise. FD is the Fréchet distance between the generated and the true clips' `world.Features` (appearance and motion statistics by colour tracking; each feature standardised by the true clips' spread). Speed, smoothness (mean |second difference| of the tracked centres) and persistence (how often an object of the first frame is still found) come from `world.MeasureMotion`; speed W1 is the Wasserstein distance between the per-clip speeds generated and true; background is `world.Background`, the mean level in [0, 1] of the pixels away from every tracked object (0 for the world). The first two rows calibrate FD: an independent sample of true clips (the floor) and the first frame held still (no motion). The still video's FD is far below every model's: the features weigh appearance (how many objects are tracked, their colours and sizes, frame by frame) as much as motion, and a still copy of the first frame gets the appearance exactly right; FD ranks the models against each other, and speed W1 and persistence say how they move. \"FD's largest terms\" names the two features whose own one-dimensional Fréchet terms (`world.FeatureTerms`, in FD's standardised units, averaged over the seeds) are largest, which says where a row's FD comes from: a feature the true clips hardly vary in, such as persistence (an object of the world is nearly always found), weighs heavily once divided by that small spread.\n\n",
		o.EvalClips)
	fmt.Fprintf(&b, "## Wall time of each stage\n\n| stage | seed | steps | wall time | steps/s | peak GPU memory | started |\n|---|---|---|---|---|---|---|\n")
	for _, r := range append([]runFile{res.teacher}, res.runs...) {
		for _, s := range r.Stages {
			if s.Steps == 0 {
				continue // a teacher evaluated as it is
			}
			mem := "n/a"
			if s.PeakGiB > 0 {
				mem = fmt.Sprintf("%.2f GiB", s.PeakGiB)
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %.1f s | %.2f | %s | %s |\n", s.Name, r.Seed, s.Steps, s.Wall.Seconds(),
				float64(s.Steps)/s.Wall.Seconds(), mem, r.Started.Format(time.DateTime))
		}
	}
	if n := sideBySide(res.runs); n > 0 {
		fmt.Fprintf(&b, "\n%d of these student runs overlapped in time with another: they ran side by side on the same device, each in a process of its own (examples/toy/table.sh starts a phase's jobs of every seed at once), so their wall times, steps/s and the rows' ms per clip are those of a shared device, not of one run alone.\n", n)
	}
	fmt.Fprintf(&b, "\n## The table\n\n%s\n", res.table())
	if len(res.missing) > 0 {
		fmt.Fprintf(&b, "Jobs no seed has run in this work folder, so their rows are missing: %s.\n\n", strings.Join(res.missing, ", "))
	}
	fmt.Fprintf(&b, "## The paper's orderings, tested (FD, lower is better)\n\n\"yes\" means every seed's FD of the first is below every seed's FD of the second; \"reversed\" the opposite; otherwise the seeds overlap.\n\n| hypothesis | ours (mean ± sd) | paper (FVD) | holds |\n|---|---|---|---|\n")
	single, marked := false, false
	for _, c := range o.claims() {
		a, z := res.chosen(c.better), res.chosen(c.worse)
		if a == nil || z == nil {
			fmt.Fprintf(&b, "| %s | | %s | not measured |\n", c.text, c.paper)
			continue
		}
		// The teacher's rows have one run by design; a student row of one
		// seed has no spread to test against.
		for _, r := range []*aggRow{a, z} {
			single = single || (len(r.Seeds) == 1 && !strings.HasPrefix(r.Name, "teacher"))
		}
		fmt.Fprintf(&b, "| %s | %s vs %s | %s | %s |\n", c.text, a.FD.format(1)+chosenMark(a), z.FD.format(1)+chosenMark(z), c.paper, verdict(a, z))
		marked = marked || chosenMark(a) != "" || chosenMark(z) != ""
	}
	if marked {
		b.WriteString("\n† the row of the checkpoint the validation chose (\"" + strings.TrimPrefix(bestLabel(""), ", ") + "\"), in place of the last step's.\n")
	}
	if single {
		b.WriteString("\nWhere a student row has one seed, its \"yes\" compares single runs: it says nothing about the spread between seeds.\n")
	}
	b.WriteString("\n## Commands\n\n")
	seen := map[string]bool{}
	for _, r := range append([]runFile{res.teacher}, res.runs...) {
		if !seen[r.Command] {
			seen[r.Command] = true
			fmt.Fprintf(&b, "- `%s` (first started %s)\n", r.Command, r.Started.Format(time.DateTime))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// firstSteps is the teacher's training steps.
func firstSteps(r runFile) int {
	if len(r.Stages) == 0 {
		return 0
	}
	return r.Stages[0].Steps
}

// sideBySide counts the runs whose time, from their start over their
// stages' wall time, overlaps another run's. It is an estimate for runs
// resumed across commands: such a run counts as running from its first
// start for as long as it trained, whatever the gaps between commands.
func sideBySide(runs []runFile) int {
	end := make([]time.Time, len(runs))
	for i, r := range runs {
		var d time.Duration
		for _, s := range r.Stages {
			d += s.Wall
		}
		end[i] = r.Started.Add(d)
	}
	n := 0
	for i, a := range runs {
		for j, z := range runs {
			if i != j && a.Started.Before(end[j]) && z.Started.Before(end[i]) {
				n++
				break
			}
		}
	}
	return n
}

// teacherStart says where the teacher's training began: random weights,
// or the folder its stage line names.
func teacherStart(r runFile) string {
	if len(r.Stages) > 0 {
		if _, from, ok := strings.Cut(r.Stages[0].Name, "continued from "); ok {
			return "from the weights in " + strings.TrimSuffix(strings.SplitN(from, ",", 2)[0], ")")
		}
	}
	return "from random weights"
}

// adapterEMAs are the decays of the adapters' averages the student runs
// kept (-adapter-ema), each once, in ascending order.
func (res *results) adapterEMAs() []float64 {
	var ds []float64
	for _, r := range res.runs {
		if got, ok := r.settings(); ok && got.AdapterEMA > 0 && !slices.Contains(ds, got.AdapterEMA) {
			ds = append(ds, got.AdapterEMA)
		}
	}
	slices.Sort(ds)
	return ds
}

// studentSettings are the student runs' settings (this command's when no
// run records any), and whether every run used the same training settings.
func (o *experiment) studentSettings(res *results) (experiment, bool) {
	st, same, first := *o, true, true
	for _, r := range res.runs {
		got, ok := r.settings()
		if !ok {
			continue
		}
		key := func(e experiment) [9]float64 {
			return [9]float64{float64(e.Stage1Steps), float64(e.Stage2Steps), float64(e.Batch), float64(e.Rank), e.LR, e.DiscLR, e.MaxGuidance, e.lambdaAdv(), float64(e.Watch)}
		}
		if first {
			st, first = got, false
		} else if key(got) != key(st) {
			same = false
		}
	}
	return st, same
}

// readmeNote points at a model folder's README.md, where it has one.
func readmeNote(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		return ""
	}
	return "; " + filepath.Join(dir, "README.md") + " gives their training"
}

// lambdaAdvNote is stage 2's adversarial weight, set against the paper's.
func lambdaAdvNote(l float64) string {
	if l == paperLambdaAdv {
		return fmt.Sprintf("%g (the paper's)", l)
	}
	return fmt.Sprintf("%g (the paper's is %g; the row \"%s\" uses it)", l, paperLambdaAdv, labelAdv1)
}
