package osv

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
	"github.com/onestepvideo/osv-go/unet"
)

// optionsConfig is the option tests' tiny stage 2: 8 levels and k = 2, so
// that n runs over 0..5.
func optionsConfig(seed uint64) TrainConfig {
	return TrainConfig{Stage: 2, LoRARank: 4, LR: 5e-3, DiscLR: 1e-3, GridSize: 8, SigmaMax: 20, SolverSteps: 2, Seed: seed}
}

// firstSteps is each config's first step from the same start: u's base
// weights, fresh adapters, and a discriminator made afresh from bb with
// the same seed.
func firstSteps(t *testing.T, u *unet.Model, bb *discriminator.Backbone, b Batch, cfgs ...TrainConfig) []Metrics {
	t.Helper()
	out := make([]Metrics, len(cfgs))
	for i, c := range cfgs {
		d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
		require.NoError(t, err)
		tr, err := NewTrainer(u, d, c)
		require.NoError(t, err)
		out[i], err = tr.Step(b)
		require.NoError(t, err)
		require.False(t, out[i].Skipped, "config %d", i)
		require.NoError(t, tr.Close())
		require.NoError(t, d.Close())
	}
	return out
}

// sameStep requires two first steps from the same start to agree: their
// losses to the bit, and their gradient norms too on the CPU (CUDA's
// backward kernels accumulate with atomics, so there to rounding).
func sameStep(t *testing.T, want, got Metrics, msg string) {
	t.Helper()
	if testDevice.CUDA {
		require.InDelta(t, want.GradNormG, got.GradNormG, 1e-5*want.GradNormG, "%s: grad_norm_g", msg)
		require.InDelta(t, want.GradNormD, got.GradNormD, 1e-5*want.GradNormD, "%s: grad_norm_d", msg)
		want.GradNormG, want.GradNormD, want.GPUMemGiB = got.GradNormG, got.GradNormD, got.GPUMemGiB
	}
	require.Equal(t, want, got, msg)
}

// optionsFixture is the option tests' shared start: the tiny UNet, the
// discriminator's backbone and a batch; release closes them (checking the
// errors) and is also run at the test's end if the test did not. The tiny
// discriminator made with the backbone is closed at once: the tests make
// their own from bb.
func optionsFixture(t *testing.T) (u *unet.Model, bb *discriminator.Backbone, b Batch, release func()) {
	t.Helper()
	u = tinyUNet(t)
	bb, d := tinyDisc(t)
	require.NoError(t, d.Close())
	s := torch.NewScope()
	b = tinyBatch(t, s)
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		s.Close()
		require.NoError(t, bb.Close())
		require.NoError(t, u.Close())
	}
	t.Cleanup(release)
	return u, bb, b, release
}

// The consistency loss's λ(σ): with "edm" and "inverse-gap" the first
// step's L_CD is the uniform one's times (σ_n² + 1)/σ_n² and
// 1/(σ_n − σ_{n+k}), and so is the student's gradient (without the
// adversarial term, which λ does not scale); "uniform" is the default to
// the bit. Three seeds draw three grid indices.
func TestLossWeight(t *testing.T) {
	start := torch.Live()
	u, bb, b, release := optionsFixture(t)
	seen := map[float64]bool{}
	for _, seed := range []uint64{1, 2, 6} {
		c := optionsConfig(seed)
		c.NoAdversarial = true
		named := func(w string) TrainConfig {
			x := c
			x.LossWeight = w
			return x
		}
		ms := firstSteps(t, u, bb, b, c, named("uniform"), named("edm"), named("inverse-gap"))
		plain, uniform, edm, gap := ms[0], ms[1], ms[2], ms[3]
		sameStep(t, plain, uniform, "uniform is the default")

		grid := c.Defaults().grid()
		n := slices.Index(grid, plain.Sigma)
		require.GreaterOrEqual(t, n, 0, "seed %d: σ_n %g is not on the grid", seed, plain.Sigma)
		sn, snk := grid[n], grid[n+c.SolverSteps]
		seen[sn] = true
		for _, w := range []struct {
			name   string
			m      Metrics
			lambda float64
		}{{"edm", edm, (sn*sn + 1) / (sn * sn)}, {"inverse-gap", gap, 1 / (sn - snk)}} {
			t.Logf("seed %d, σ_n %.4g, σ_{n+k} %.4g: %s λ %.6g, L_CD %.6g → %.6g", seed, sn, snk, w.name, w.lambda, plain.LossDist, w.m.LossDist)
			require.Equal(t, plain.Sigma, w.m.Sigma, "%s: the same step", w.name)
			require.InDelta(t, plain.LossDist*w.lambda, w.m.LossDist, 1e-5*plain.LossDist*w.lambda, "seed %d: %s L_CD", seed, w.name)
			require.InDelta(t, plain.LossG*w.lambda, w.m.LossG, 1e-5*plain.LossG*w.lambda, "seed %d: %s student loss", seed, w.name)
			require.InDelta(t, plain.GradNormG*w.lambda, w.m.GradNormG, 1e-5*plain.GradNormG*w.lambda, "seed %d: %s student gradient", seed, w.name)
		}
	}
	require.Len(t, seen, 3, "the seeds should draw three levels")
	release()
	require.Equal(t, start, torch.Live(), "native tensors leaked")
}

// The discriminator's real sample in stage 2: "data" (x0) changes the
// first step's hinge loss and nothing on the student's side; a maximum σ
// below every level gives "data"'s loss exactly and one above every level
// the teacher's; at the step's own level σ_{n+k−1} the teacher's estimate
// is kept, and just below it x0 is taken.
func TestDiscReal(t *testing.T) {
	start := torch.Live()
	u, bb, b, release := optionsFixture(t)

	c := optionsConfig(6)
	grid := c.Defaults().grid()
	k := c.SolverSteps
	with := func(real string, maxSigma float64) TrainConfig {
		x := c
		x.DiscReal, x.DiscRealMaxSigma = real, maxSigma
		return x
	}
	// The step's grid index (Step's documented draw) and the level of the
	// teacher's estimate, inside the grid so that the edges are other levels.
	n := rand.New(rand.NewPCG(c.Seed, 1)).IntN(len(grid) - k)
	level := grid[n+k-1]
	require.Less(t, level, grid[0])
	require.Greater(t, level, grid[len(grid)-1])

	ms := firstSteps(t, u, bb, b,
		with("", 0), with("teacher", 0), with("data", 0),
		with("teacher", grid[len(grid)-1]/2), with("teacher", 2*grid[0]),
		with("teacher", level), with("teacher", math.Nextafter(level, 0)))
	def, teacher, data, below, above, at, under := ms[0], ms[1], ms[2], ms[3], ms[4], ms[5], ms[6]
	t.Logf("σ_n %.4g, the estimate's level %.4g: loss_d teacher %.6g, data %.6g", def.Sigma, level, def.LossD, data.LossD)
	require.Equal(t, grid[n], def.Sigma, "the step's σ_n")
	sameStep(t, def, teacher, "teacher is the default")
	sameStep(t, def, above, "a maximum above every level keeps the teacher's estimate")
	sameStep(t, def, at, "the estimate at exactly the maximum is kept")
	sameStep(t, data, below, "a maximum below every level takes x0")
	sameStep(t, data, under, "an estimate just above the maximum gives way to x0")
	require.Greater(t, math.Abs(data.LossD-def.LossD), 1e-4*def.LossD, "x0 as the real sample left loss_d unchanged")
	require.Equal(t, def.LossG, data.LossG, "the student's side does not see the real sample")
	require.Equal(t, def.LossDist, data.LossDist)
	require.Equal(t, def.LossAdvG, data.LossAdvG)

	release()
	require.Equal(t, start, torch.Live(), "native tensors leaked")
}

func TestTrainConfigLossWeightAndDiscReal(t *testing.T) {
	c := TrainConfig{}.Defaults()
	require.Empty(t, c.LossWeight, "empty means the default")
	require.Empty(t, c.DiscReal)
	require.Zero(t, c.DiscRealMaxSigma)
	for _, ok := range []TrainConfig{
		{LossWeight: "uniform"}, {LossWeight: "edm"}, {LossWeight: "inverse-gap"},
		{DiscReal: "teacher"}, {DiscReal: "data"}, {DiscRealMaxSigma: 1.5}, {DiscReal: "teacher", DiscRealMaxSigma: 1.5},
	} {
		require.NoError(t, ok.Defaults().Validate(), "%+v", ok)
	}
	for _, bad := range []struct {
		c    TrainConfig
		want []string
	}{
		{TrainConfig{LossWeight: "l2"}, []string{"loss_weight", `"l2"`, `"uniform"`, `"edm"`, `"inverse-gap"`}},
		{TrainConfig{LossWeight: "EDM"}, []string{"loss_weight", `"EDM"`}},
		{TrainConfig{DiscReal: "student"}, []string{"disc_real", `"student"`, `"teacher"`, `"data"`}},
		{TrainConfig{DiscRealMaxSigma: -1}, []string{"disc_real_max_sigma", "-1"}},
		{TrainConfig{DiscRealMaxSigma: math.NaN()}, []string{"disc_real_max_sigma", "NaN"}},
		{TrainConfig{DiscReal: "data", DiscRealMaxSigma: 0.5}, []string{"disc_real_max_sigma", "0.5", `"data"`}},
	} {
		err := bad.c.Defaults().Validate()
		require.Error(t, err, "%+v", bad.c)
		for _, w := range bad.want {
			require.ErrorContains(t, err, w)
		}
		_, err = NewTrainer(nil, nil, bad.c)
		require.ErrorContains(t, err, bad.want[0], "NewTrainer validates")
	}

	// The keys read back from JSON, and a bad name in a file is reported
	// with the file.
	dir := t.TempDir()
	want := TrainConfig{LossWeight: "inverse-gap", DiscReal: "teacher", DiscRealMaxSigma: 0.25}.Defaults()
	raw, err := json.Marshal(want)
	require.NoError(t, err)
	for _, key := range []string{`"loss_weight":"inverse-gap"`, `"disc_real":"teacher"`, `"disc_real_max_sigma":0.25`} {
		require.Contains(t, string(raw), key)
	}
	path := filepath.Join(dir, "train.json")
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	got, err := LoadTrainConfig(path)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.NoError(t, os.WriteFile(path, []byte(`{"loss_weight": "edm", "disc_real": "data", "disc_real_max_sigma": 2}`), 0o644))
	_, err = LoadTrainConfig(path)
	require.ErrorContains(t, err, "disc_real_max_sigma")
	require.ErrorContains(t, err, "train.json")
}

// A checkpoint records the new keys in its config, and a stage-2 trainer
// restores it whatever its own λ(σ) and real sample; a stage-1 checkpoint
// starts a stage-2 trainer that sets them.
func TestRestoreAcrossLossOptions(t *testing.T) {
	u := tinyUNet(t)
	defer u.Close()
	bb, d := tinyDisc(t)
	defer bb.Close()
	defer d.Close()
	s := torch.NewScope()
	defer s.Close()
	b := tinyBatch(t, s)
	dir := t.TempDir()
	save := func(c TrainConfig, path string) {
		tr, err := NewTrainer(u, d, c)
		require.NoError(t, err)
		defer tr.Close()
		_, err = tr.Step(b)
		require.NoError(t, err)
		require.NoError(t, tr.Save(path))
	}
	restore := func(c TrainConfig, path string) {
		tr, err := NewTrainer(u, d, c)
		require.NoError(t, err)
		defer tr.Close()
		require.NoError(t, tr.Restore(path), "%+v", c)
		_, err = tr.Step(b)
		require.NoError(t, err)
	}

	two := optionsConfig(3)
	two.LossWeight, two.DiscReal = "edm", "data"
	path := filepath.Join(dir, "stage2.safetensors")
	save(two, path)
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	var meta checkpointMeta
	require.NoError(t, json.Unmarshal([]byte(f.Header.Metadata[checkpointKey]), &meta))
	require.NoError(t, f.Close())
	require.Equal(t, "edm", meta.Config.LossWeight)
	require.Equal(t, "data", meta.Config.DiscReal)
	other := optionsConfig(3)
	other.LossWeight, other.DiscRealMaxSigma = "inverse-gap", 0.5
	restore(optionsConfig(3), path)
	restore(other, path)

	one := optionsConfig(3)
	one.Stage = 1
	path = filepath.Join(dir, "stage1.safetensors")
	save(one, path)
	restore(other, path)
}

// Foreach: the multi-tensor optimisers and clips train as the per-tensor
// ones do: the same losses, gradient norms and adapters, over three steps
// to the bit on the CPU, and over the first step to 1e-5 on CUDA (whose
// multi-tensor norm kernel may round differently; see comparableSteps).
func TestForeachTrainerMatchesPerTensor(t *testing.T) {
	u, bb, b, _ := optionsFixture(t)
	n := comparableSteps()
	plain, pw := trainerSteps(t, u, bb, b, optionsConfig(4), n)
	c := optionsConfig(4)
	c.Foreach = true
	multi, mw := trainerSteps(t, u, bb, b, c, n)
	if !testDevice.CUDA {
		require.Equal(t, plain, multi)
		require.Equal(t, pw, mw)
		require.NotEqual(t, plain[0].LossDist, plain[2].LossDist, "the steps trained")
	}
	closeSteps(t, plain, pw, multi, mw, 1e-5)
}

// comparableSteps is how many trainer steps two runs can be compared
// over: three on the CPU, where a run repeats itself to the bit; one on
// CUDA, where two runs of the same plain configuration already differ
// after the first step (measured on the H200: grad_norm_d 4.59868 and
// 4.59821 at step 2, 5.580 and 5.450 at step 3), while the first step
// agrees to every printed digit.
func comparableSteps() int {
	if testDevice.CUDA {
		return 1
	}
	return 3
}

// trainerSteps is n trainer steps of c from fresh adapters and a fresh
// discriminator: their metrics and the adapters after them.
func trainerSteps(t *testing.T, u *unet.Model, bb *discriminator.Backbone, b Batch, c TrainConfig, n int) ([]Metrics, [][]float64) {
	t.Helper()
	d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
	require.NoError(t, err)
	defer d.Close()
	tr, err := NewTrainer(u, d, c)
	require.NoError(t, err)
	defer tr.Close()
	require.Equal(t, c.Foreach, tr.optG.Foreach)
	var ms []Metrics
	for range n {
		m, err := tr.Step(b)
		require.NoError(t, err)
		ms = append(ms, m)
	}
	var ws [][]float64
	for _, p := range tr.Student.Trainable() {
		v, err := p.Float64s()
		require.NoError(t, err)
		ws = append(ws, v)
	}
	return ms, ws
}

// adaptersRelL2 is the relative L2 distance of other from ref, over all their
// tensors' values at once.
func adaptersRelL2(ref, other [][]float64) float64 {
	var num, den float64
	for i := range ref {
		for j := range ref[i] {
			num += (ref[i][j] - other[i][j]) * (ref[i][j] - other[i][j])
			den += ref[i][j] * ref[i][j]
		}
	}
	return math.Sqrt(num / den)
}

// closeSteps requires two runs' losses, norms and adapters to agree to
// the relative tolerance tol.
func closeSteps(t *testing.T, plain []Metrics, pw [][]float64, other []Metrics, ow [][]float64, tol float64) {
	t.Helper()
	for i := range plain {
		for name, v := range map[string][2]float64{
			"loss_g": {plain[i].LossG, other[i].LossG}, "loss_d": {plain[i].LossD, other[i].LossD},
			"grad_norm_g": {plain[i].GradNormG, other[i].GradNormG}, "grad_norm_d": {plain[i].GradNormD, other[i].GradNormD},
		} {
			require.InDelta(t, v[0], v[1], tol*math.Abs(v[0])+1e-9, "step %d: %s", i+1, name)
		}
	}
	for i := range pw {
		for j := range pw[i] {
			require.InDelta(t, pw[i][j], ow[i][j], tol*(1e-3+math.Abs(pw[i][j])), "adapter tensor %d, value %d", i, j)
		}
	}
}

// With GraphDenoisers the teacher's and θ⁻'s calls replay CUDA graphs; the
// steps are the plain ones (the same kernels) to float32 rounding, over
// the steps that two plain runs repeat (comparableSteps). On the CPU the
// option is refused by name.
func TestGraphDenoisersMatchPlain(t *testing.T) {
	u, bb, b, _ := optionsFixture(t)
	c := optionsConfig(4)
	c.GraphDenoisers = true
	if !testDevice.CUDA {
		d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
		require.NoError(t, err)
		defer d.Close()
		_, err = NewTrainer(u, d, c)
		require.ErrorContains(t, err, "graph_denoisers")
		return
	}
	n := comparableSteps()
	plain, pw := trainerSteps(t, u, bb, b, optionsConfig(4), n)
	graphed, gw := trainerSteps(t, u, bb, b, c, n)
	closeSteps(t, plain, pw, graphed, gw, 1e-5)
	require.NotZero(t, graphed[0].LossDist)
}

// recordingTrainer is a trainer of c (with a discriminator of its own)
// whose steps run GraphStep's work one operation at a time (eager) or, on
// CUDA, recorded and replayed; done closes both.
func recordingTrainer(t *testing.T, u *unet.Model, bb *discriminator.Backbone, c TrainConfig, eager bool) (tr *Trainer, done func()) {
	t.Helper()
	d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
	require.NoError(t, err)
	c.GraphStep = !eager
	tr, err = NewTrainer(u, d, c)
	if err != nil {
		d.Close()
	}
	require.NoError(t, err)
	if eager {
		tr.eagerRec = true
		tr.optG.Capturable, tr.optD.Capturable = true, true
	}
	return tr, func() { tr.Close(); d.Close() }
}

// recordedSteps is n steps of c with GraphStep's work run one operation at
// a time (eager) or, on CUDA, recorded and replayed.
func recordedSteps(t *testing.T, u *unet.Model, bb *discriminator.Backbone, b Batch, c TrainConfig, n int, eager bool) ([]Metrics, [][]float64) {
	t.Helper()
	tr, done := recordingTrainer(t, u, bb, c, eager)
	defer done()
	var ms []Metrics
	for i := range n {
		m, err := tr.Step(b)
		require.NoError(t, err, "step %d", i+1)
		ms = append(ms, m)
	}
	require.Equal(t, int64(n), tr.optG.Steps(), "the student's updates, counted on the device")
	var ws [][]float64
	for _, p := range tr.Student.Trainable() {
		v, err := p.Float64s()
		require.NoError(t, err)
		ws = append(ws, v)
	}
	return ms, ws
}

// A recorded step reads and writes the tensors it was recorded with, so
// none of the trainer's state may be replaced by a new tensor while it
// trains: the adapters, θ⁻, the discriminator (its spectral norms'
// power-iteration vectors among them) and the optimisers' moments are the
// same tensors after three steps of GraphStep's work as before the first
// (on CUDA also recorded and replayed), holding new values.
func TestGraphStepKeepsStateInPlace(t *testing.T) {
	u, bb, b, _ := optionsFixture(t)
	modes := []bool{true}
	if testDevice.CUDA {
		modes = append(modes, false)
	}
	for _, eager := range modes {
		t.Run(map[bool]string{true: "eager", false: "recorded"}[eager], func(t *testing.T) {
			tr, done := recordingTrainer(t, u, bb, optionsConfig(4), eager)
			defer done()
			before := tr.state()
			values := map[string][]float32{}
			for k, v := range before {
				x, err := v.Float32s()
				require.NoError(t, err)
				values[k] = x
			}
			for i := range 3 {
				_, err := tr.Step(b)
				require.NoError(t, err, "step %d", i+1)
			}
			after := tr.state()
			require.Len(t, after, len(before))
			changed := map[string]bool{} // by part: the key's first element
			for k, v := range before {
				require.Same(t, v, after[k], "%s is a new tensor after three steps", k)
				x, err := v.Float32s()
				require.NoError(t, err)
				if !slices.Equal(x, values[k]) {
					changed[strings.SplitN(k, ".", 2)[0]] = true
					changed["u"] = changed["u"] || strings.HasSuffix(k, ".weight_u")
				}
			}
			for _, part := range []string{"lora", "ema", "disc", "opt_g", "opt_d", "u"} {
				require.True(t, changed[part], "no %s tensor changed in three steps", part)
			}
		})
	}
}

// GraphStep's work, one operation at a time, trains as Step does: the same
// losses, norms and adapters over three steps to float32 rounding (its
// levels, λ and optimiser scalars are float32 on the device), with the
// default discriminator real, with x0 as the real sample, without the
// adversarial term and with λ(σ). On CUDA the recorded graph's replays
// (from the second step) stay as close to the eager work as a second
// eager run does. The option is refused off CUDA and beside
// graph_denoisers.
func TestGraphStepMatchesPlain(t *testing.T) {
	u, bb, b, _ := optionsFixture(t)
	variants := map[string]func(*TrainConfig){
		"default": func(*TrainConfig) {}, "real=data": func(c *TrainConfig) { c.DiscReal = "data" },
		"no-adv": func(c *TrainConfig) { c.NoAdversarial = true }, "edm": func(c *TrainConfig) { c.LossWeight = "edm" },
		"stage 1": func(c *TrainConfig) { c.Stage, c.Seed = 1, 2 }, // seed 2: a different σ at each of the three steps
	}
	for name, change := range variants {
		c := optionsConfig(4)
		// Small steps, so that float32 rounding does not grow from step to
		// step (at the default rates, two runs one rounding apart differ by
		// percents at the third step) while a wrong input would show.
		c.LR, c.DiscLR = 1e-5, 1e-5
		change(&c)
		n := comparableSteps()
		plain, pw := trainerSteps(t, u, bb, b, c, n)
		eager, ew := recordedSteps(t, u, bb, b, c, n, true)
		t.Run(name, func(t *testing.T) {
			closeSteps(t, plain, nil, eager, nil, 1e-3)
			// Adam moves a weight whose gradient is about 0 by up to the rate
			// in either direction, so single weights are compared as a whole.
			require.Less(t, adaptersRelL2(pw, ew), 1e-2, "the adapters, relative L2")
		})
	}
	d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
	require.NoError(t, err)
	defer d.Close()
	// The checks in their order: the device, then graph_denoisers.
	refusals := []struct {
		want   string
		change func(*TrainConfig)
		cuda   bool // whether the refusal is the one reached on CUDA (else on the CPU)
	}{
		{"graph_step needs the UNet on a CUDA device", func(c *TrainConfig) { c.Stage = 1 }, false},
		{"leave graph_denoisers off", func(c *TrainConfig) { c.GraphDenoisers = true }, true},
	}
	for _, r := range refusals {
		if r.cuda != testDevice.CUDA {
			continue
		}
		c := optionsConfig(4)
		c.GraphStep = true
		r.change(&c)
		_, err := NewTrainer(u, d, c)
		require.ErrorContains(t, err, r.want)
	}
	if !testDevice.CUDA {
		return
	}
	for _, stage := range []int{2, 1} {
		c := optionsConfig(4)
		c.Stage = stage
		// The small rates again: the first replay (step 2) follows one
		// update, and at the default rates Adam's first update (about the
		// rate times the gradient's sign) grows rounding. Step 1 records
		// while it runs; its metrics were identical to eager's in the runs
		// that printed them. Step 2's norms, relative: two eager runs
		// differed by up to 1.8e-4 at 5e-3 and by 7e-8 to 7.5e-5 at 1e-5; the graph and an
		// eager run by 3.7e-5 to 3.6e-4 at 1e-5 (grad_norm_d), a spread
		// that two eager runs of the same session need not show. Hence the
		// relative floor of 1e-3. A replay of stale inputs (step 1's noise,
		// σ or batch) is still caught: step 2's metrics must stand further
		// from step 1's than the floor, and the graph's must lie nearer
		// eager's step 2 than step 1 wherever those two stand apart.
		c.LR, c.DiscLR = 1e-5, 1e-5
		e1, ew := recordedSteps(t, u, bb, b, c, 2, true)
		e2, _ := recordedSteps(t, u, bb, b, c, 2, true)
		g, gw := recordedSteps(t, u, bb, b, c, 2, false)
		metrics := func(s []Metrics, i int) map[string]float64 {
			return map[string]float64{"loss_g": s[i].LossG, "loss_d": s[i].LossD, "grad_norm_g": s[i].GradNormG, "grad_norm_d": s[i].GradNormD}
		}
		step1, step2 := metrics(e1, 0), metrics(e1, 1)
		moved := 0.0 // the largest relative change of a metric from step 1 to step 2
		for name, v1 := range step1 {
			moved = max(moved, math.Abs(step2[name]-v1)/math.Abs(v1))
		}
		require.Greater(t, moved, 1e-2, "stage %d: step 2's metrics must differ from step 1's for the comparison to tell them apart", stage)
		for i := range g {
			ea, eb, gr := metrics(e1, i), metrics(e2, i), metrics(g, i)
			for name, v := range ea {
				bound := max(3*math.Abs(eb[name]-v), 1e-3*math.Abs(v))
				require.InDelta(t, v, gr[name], bound, "stage %d, step %d: %s (a second eager run: %g)", stage, i+1, name, eb[name])
				if prev := step1[name]; i == 1 && math.Abs(v-prev) > 2*bound {
					require.Less(t, math.Abs(gr[name]-v), math.Abs(gr[name]-prev), "stage %d, step 2: %s is nearer eager's step 1 (%g) than its step 2 (%g)", stage, name, prev, v)
				}
			}
		}
		require.Less(t, adaptersRelL2(ew, gw), 1e-3, "stage %d: the adapters after the replay, relative L2", stage)
	}
}
