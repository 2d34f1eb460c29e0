package osv_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/loss/adversarial"
	"github.com/onestepvideo/osv-go/osv/loss/consistency"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// fixturePath joins parts under the fixture root: $OSV_FIXTURES, or the
// module's testdata/svd-tiny (this package sees only the public API, so
// it finds the folder itself).
func fixturePath(parts ...string) string {
	root := os.Getenv("OSV_FIXTURES")
	if root == "" {
		root = filepath.Join("..", "testdata", "svd-tiny")
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// fixtureBatch is one random clip with its conditioning, every shape taken
// from the UNet's config: latents [1, F, C, h, w], the image latent with
// the remaining input channels, the embedding of the cross-attention
// width, and the added time ids (fps − 1, motion bucket, noise
// augmentation) that the projection expects.
func fixtureBatch(t *testing.T, s *torch.Scope, u *unet.Model, seed uint64) osv.Batch {
	t.Helper()
	c := u.Config
	g, err := torch.NewGenerator(seed)
	require.NoError(t, err)
	defer g.Close()
	draw := func(shape ...int64) *torch.Tensor {
		x, err := g.Randn(s, shape, torch.Float32, u.Device())
		require.NoError(t, err)
		return x
	}
	nIDs := c.ProjectionClassEmbeddingsInputDim / c.AdditionTimeEmbedDim
	require.Equal(t, int64(3), nIDs, "SVD's UNet takes three added time ids")
	ids, err := torch.FromFloat32(s, []float32{6, 127, 0.02}, []int64{1, 3}, torch.Float32, u.Device())
	require.NoError(t, err)
	h := c.SampleSize
	return osv.Batch{
		Latents:      draw(1, c.NumFrames, c.OutChannels, h, h),
		ImageLatents: draw(1, c.InChannels-c.OutChannels, h, h),
		ImageEmbeds:  draw(1, 1, c.CrossAttentionDim[0]),
		AddedTimeIDs: ids,
	}
}

// stepLosses are the numbers both steps report.
type stepLosses struct {
	Sigma, LossG, LossDist, LossAdvG, LossD, GradNormG, GradNormD float64
}

func lossesOf(m osv.Metrics) stepLosses {
	return stepLosses{m.Sigma, m.LossG, m.LossDist, m.LossAdvG, m.LossD, m.GradNormG, m.GradNormD}
}

// handRecipe is OSV's stage 2 written with public calls only: the typed
// teacher, student and EMA, the consistency loss, the discriminator and
// the hinge losses, the engine's backward, clipping and AdamW. decay and
// lambdaAdv are its own copies of the config's μ and λ_adv, so that a
// deliberately wrong one can show that the comparison notices.
type handRecipe struct {
	cfg              osv.TrainConfig
	decay, lambdaAdv float64
	grid             []float64

	teacher    *osv.Teacher
	student    *osv.Student
	ema        *osv.EMA
	disc       *discriminator.Discriminator
	optG, optD *torch.AdamW
	gen        *torch.Generator
	step       int64
}

// newHandRecipe sets up what NewTrainer sets up: adapters seeded with the
// config's seed on the default targets, θ⁻ = θ, AdamW for both sides, the
// noise generator, the discriminator in training mode.
func newHandRecipe(u *unet.Model, d *discriminator.Discriminator, cfg osv.TrainConfig) (*handRecipe, error) {
	cfg = cfg.Defaults()
	h := &handRecipe{cfg: cfg, decay: cfg.EMADecay, lambdaAdv: cfg.LambdaAdv, disc: d,
		grid: solver.TrainingSigmas(cfg.GridSize, cfg.SigmaMin, cfg.SigmaMax, cfg.Rho)}
	var err error
	if h.teacher, err = osv.NewTeacher(u); err != nil {
		return nil, err
	}
	lc := lora.Config{R: cfg.LoRARank, LoraAlpha: cfg.LoRAAlpha, TargetModules: lora.DefaultTargets}
	if h.student, err = osv.NewStudent(h.teacher, lc, cfg.Seed); err != nil {
		return nil, err
	}
	if h.ema, err = osv.NewEMA(h.student); err != nil {
		h.Close()
		return nil, err
	}
	if h.optG, err = torch.NewAdamW(h.student.Trainable(), cfg.LR, cfg.Beta1, cfg.Beta2, cfg.AdamEps, cfg.WeightDecay); err != nil {
		h.Close()
		return nil, err
	}
	if h.optD, err = torch.NewAdamW(paramTensors(d.Trainable()), cfg.DiscLR, cfg.Beta1, cfg.Beta2, cfg.AdamEps, cfg.WeightDecay); err != nil {
		h.Close()
		return nil, err
	}
	if h.gen, err = torch.NewGenerator(cfg.Seed); err != nil {
		h.Close()
		return nil, err
	}
	d.SetTraining(true)
	return h, nil
}

func (h *handRecipe) Close() {
	h.ema.Close()
	if h.optG != nil {
		h.optG.Close()
	}
	if h.optD != nil {
		h.optD.Close()
	}
	h.gen.Close()
	h.student.Close()
}

func paramTensors(ps []*torch.Param) []*torch.Tensor {
	out := make([]*torch.Tensor, len(ps))
	for i, p := range ps {
		out[i] = p.T
	}
	return out
}

// Step is one stage-2 step (OSV.md section 4) on b, with the config's
// λ(σ) and the discriminator's real sample.
func (h *handRecipe) Step(b osv.Batch) (l stepLosses, err error) {
	runtime.LockOSThread() // one thread builds and back-propagates the graph
	defer runtime.UnlockOSThread()
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	h.step++
	k := h.cfg.SolverSteps
	n := rand.New(rand.NewPCG(h.cfg.Seed, uint64(h.step))).IntN(len(h.grid) - k)
	l.Sigma = h.grid[n]
	noise, err := h.gen.Randn(s, b.Latents.Shape(), torch.Float32, b.Latents.Device())
	if err != nil {
		return l, err
	}
	cond := b.Cond()
	x0 := s.Cast(b.Latents, torch.Float32)
	var weight func(float64) float64
	switch h.cfg.LossWeight {
	case "edm":
		weight = func(sigma float64) float64 { return 1 + 1/(sigma*sigma) }
	case "inverse-gap":
		weight = func(sigma float64) float64 { return 1 / (sigma - h.grid[n+k]) }
	}
	out := consistency.Apply(s, consistency.Inputs{
		Student: h.student.Denoiser(cond), Target: h.ema.Denoiser(cond), Teacher: h.teacher.Denoiser(cond),
		Data: x0, Noise: noise, Sigmas: h.grid[n : n+k+1],
		Guidance: solver.FrameGuidance(h.cfg.MinGuidance, h.cfg.MaxGuidance, int(x0.Size(1))),
		HuberC:   h.cfg.HuberC, Weight: weight,
	})
	item := func(x *torch.Tensor) float64 {
		v, err := x.Item()
		if err != nil {
			torch.Failf("hand_recipe", "%v", err)
		}
		return v
	}

	// The student: L_CD + λ_adv·(−mean D(fake)), clipped AdamW, then θ⁻.
	theta := h.student.Trainable()
	phi := paramTensors(h.disc.Trainable())
	adv := adversarial.GeneratorApply(s, h.disc.Apply(s, out.Fake))
	lossG := s.Add(out.Loss, s.MulScalar(adv, h.lambdaAdv))
	l.LossDist, l.LossAdvG, l.LossG = item(out.Loss), item(adv), item(lossG)
	update := func(loss *torch.Tensor, params []*torch.Tensor, opt *torch.AdamW) (float64, error) {
		if err := torch.ZeroGrads(params); err != nil {
			return 0, err
		}
		if err := torch.Backward(loss); err != nil {
			return 0, err
		}
		norm, err := torch.ClipGradNorm(params, h.cfg.GradClip)
		if err != nil {
			return 0, err
		}
		if !torch.Finite(norm) {
			return norm, fmt.Errorf("non-finite gradient norm %g", norm)
		}
		return norm, opt.Step()
	}
	if l.GradNormG, err = update(lossG, theta, h.optG); err != nil {
		return l, err
	}
	if err := h.ema.Update(h.student, h.decay); err != nil {
		return l, err
	}

	// The discriminator: the teacher's estimate (or x0, as configured)
	// against the detached fake (the student's backward left gradients in
	// its parameters too).
	real := out.Real
	if h.cfg.DiscReal == "data" || h.cfg.DiscRealMaxSigma > 0 && h.grid[n+k-1] > h.cfg.DiscRealMaxSigma {
		real = x0
	}
	lossD := adversarial.DiscriminatorApply(s, h.disc.Apply(s, s.Detach(real)), h.disc.Apply(s, s.Detach(out.Fake)))
	l.LossD = item(lossD)
	if l.GradNormD, err = update(lossD, phi, h.optD); err != nil {
		return l, err
	}
	if err := torch.ZeroGrads(phi); err != nil {
		return l, err
	}
	return l, torch.ZeroGrads(theta)
}

// weights are a run's final tensors by name: the LoRA adapters, their EMA
// and the discriminator (heads, upsampler, spectral-norm vectors).
type weights map[string][]float32

func snapshot(t *testing.T, s *osv.Student, e *osv.EMA, d *discriminator.Discriminator) weights {
	t.Helper()
	out := weights{}
	read := func(key string, x *torch.Tensor) {
		v, err := x.Float32s()
		require.NoError(t, err, key)
		out[key] = v
	}
	ema := e.Weights()
	require.Len(t, ema, len(s.Names()))
	for i, name := range s.Names() {
		read("lora."+name, s.Trainable()[i])
		read("ema."+name, ema[i])
	}
	for _, p := range d.State() {
		read("disc."+p.Name, p.T)
	}
	return out
}

// relL2 is ‖a − b‖/‖b‖ (‖a − b‖ when b is zero).
func relL2(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// worst is the largest relative L2 difference over the tensors whose key
// starts with prefix, and that key.
func worst(t *testing.T, got, want weights, prefix string) (float64, string) {
	t.Helper()
	var w float64
	var at string
	seen := 0
	for k, v := range want {
		if len(k) < len(prefix) || k[:len(prefix)] != prefix {
			continue
		}
		g, ok := got[k]
		require.True(t, ok, "missing %s", k)
		require.Len(t, g, len(v), k)
		seen++
		if d := relL2(g, v); d > w || at == "" {
			w, at = d, k
		}
	}
	require.Positive(t, seen, "no tensor under %q", prefix)
	return w, at
}

func relDiff(a, b float64) float64 {
	if b == 0 {
		return math.Abs(a)
	}
	return math.Abs(a-b) / math.Abs(b)
}

// A stage-2 step composed from public calls alone gives Trainer.Step's
// losses and weights: the typed models are enough to write OSV's recipe
// outside the package. Two steps (so that AdamW's second moment and the
// EMA of a moved θ⁻ both count); then the same recipe with a wrong EMA
// decay, and with a wrong adversarial weight, must be told apart.
func TestTrainerStepMatchesPublicRecipe(t *testing.T) {
	const steps, tol = 2, 1e-5
	start := torch.Live()
	u, err := unet.Load(fixturePath("pipeline", "unet"))
	require.NoError(t, err)
	defer u.Close()
	bb, err := discriminator.LoadBackbone(fixturePath("dinov2"))
	require.NoError(t, err)
	defer bb.Close()
	newDisc := func() *discriminator.Discriminator {
		d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
		require.NoError(t, err)
		return d
	}
	cfg := osv.TrainConfig{Stage: 2, LoRARank: 4, LR: 5e-3, DiscLR: 1e-3, WeightDecay: 1e-2,
		GridSize: 8, SigmaMax: 20, SolverSteps: 2, EMADecay: 0.9, LambdaAdv: 0.1, Seed: 4}
	s := torch.NewScope()
	defer s.Close()
	b := fixtureBatch(t, s, u, 5)

	// The trainer.
	d := newDisc()
	tr, err := osv.NewTrainer(u, d, cfg)
	require.NoError(t, err)
	var want []stepLosses
	for range steps {
		m, err := tr.Step(b)
		require.NoError(t, err)
		require.False(t, m.Skipped)
		want = append(want, lossesOf(m))
	}
	wantW := snapshot(t, tr.Student, tr.EMA, tr.Disc)
	require.NoError(t, tr.Close())
	require.NoError(t, d.Close())

	// The same recipe by hand, on the same UNet (the trainer's adapters are
	// gone) and a discriminator made the same way.
	run := func(decay, lambdaAdv float64) ([]stepLosses, weights) {
		d := newDisc()
		defer d.Close()
		h, err := newHandRecipe(u, d, cfg)
		require.NoError(t, err)
		defer h.Close()
		if decay != 0 {
			h.decay = decay
		}
		if lambdaAdv != 0 {
			h.lambdaAdv = lambdaAdv
		}
		var got []stepLosses
		for i := range steps {
			live := torch.Live()
			l, err := h.Step(b)
			require.NoError(t, err)
			if i > 0 { // AdamW makes its moments at its first step
				require.Equal(t, live, torch.Live(), "native tensors left by step %d", i+1)
			}
			got = append(got, l)
		}
		return got, snapshot(t, h.student, h.ema, d)
	}
	got, gotW := run(0, 0)
	require.Len(t, got, steps)
	for i := range want {
		t.Logf("step %d: trainer %+v", i+1, want[i])
		t.Logf("step %d: by hand %+v", i+1, got[i])
		require.Equal(t, want[i].Sigma, got[i].Sigma, "step %d: σ_n", i+1)
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"loss_g", got[i].LossG, want[i].LossG}, {"loss_dist", got[i].LossDist, want[i].LossDist},
			{"loss_adv_g", got[i].LossAdvG, want[i].LossAdvG}, {"loss_d", got[i].LossD, want[i].LossD},
			{"grad_norm_g", got[i].GradNormG, want[i].GradNormG}, {"grad_norm_d", got[i].GradNormD, want[i].GradNormD},
		} {
			require.Positive(t, math.Abs(c.want), "step %d: %s is zero", i+1, c.name)
			require.LessOrEqual(t, relDiff(c.got, c.want), tol, "step %d: %s %g, trainer %g", i+1, c.name, c.got, c.want)
		}
	}
	require.Len(t, gotW, len(wantW))
	for _, prefix := range []string{"lora.", "ema.", "disc."} {
		w, at := worst(t, gotW, wantW, prefix)
		t.Logf("%s*: largest relative L2 difference %.3g (%s)", prefix, w, at)
		require.LessOrEqual(t, w, tol, "%s", at)
	}
	// The weights moved, so that agreeing means something: θ⁻ started at
	// θ and now trails it.
	var trails float64
	for k, v := range wantW {
		if len(k) > 5 && k[:5] == "lora." {
			trails = max(trails, relL2(wantW["ema."+k[5:]], v))
		}
	}
	require.Greater(t, trails, 1e-3, "θ⁻ equals θ: the student never moved")

	// Controls: a wrong μ changes θ⁻; a wrong λ_adv changes the student's
	// loss and, through its gradient, the adapters.
	_, wrongMu := run(cfg.EMADecay+0.05, 0)
	w, at := worst(t, wrongMu, wantW, "ema.")
	t.Logf("EMA decay %g instead of %g: EMA differs by %.3g (%s)", cfg.EMADecay+0.05, cfg.EMADecay, w, at)
	require.Greater(t, w, 100*tol, "a wrong EMA decay went unnoticed")
	wrongL, wrongLW := run(0, 2*cfg.LambdaAdv)
	require.Greater(t, relDiff(wrongL[0].LossG, want[0].LossG), 100*tol, "a wrong λ_adv went unnoticed in the loss")
	w, at = worst(t, wrongLW, wantW, "lora.")
	t.Logf("λ_adv %g instead of %g: adapters differ by %.3g (%s)", 2*cfg.LambdaAdv, cfg.LambdaAdv, w, at)
	require.Greater(t, w, 100*tol, "a wrong λ_adv went unnoticed in the adapters")

	s.Close()
	require.NoError(t, bb.Close())
	require.NoError(t, u.Close())
	require.Equal(t, start, torch.Live(), "native tensors leaked")
}

// The options of stage 2 written by hand as well: with λ(σ) "edm" and x0
// as the discriminator's real sample, a step of the public recipe gives
// Trainer.Step's losses; the recipe without them gives another L_CD and
// another hinge loss.
func TestTrainerStepOptionsMatchPublicRecipe(t *testing.T) {
	const tol = 1e-5
	start := torch.Live()
	u, err := unet.Load(fixturePath("pipeline", "unet"))
	require.NoError(t, err)
	defer u.Close()
	bb, err := discriminator.LoadBackbone(fixturePath("dinov2"))
	require.NoError(t, err)
	defer bb.Close()
	cfg := osv.TrainConfig{Stage: 2, LoRARank: 4, LR: 5e-3, DiscLR: 1e-3, GridSize: 8, SigmaMax: 20, SolverSteps: 2,
		Seed: 4, LossWeight: "edm", DiscReal: "data"}
	s := torch.NewScope()
	defer s.Close()
	b := fixtureBatch(t, s, u, 5)
	trainer := func(c osv.TrainConfig) stepLosses {
		d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
		require.NoError(t, err)
		defer d.Close()
		tr, err := osv.NewTrainer(u, d, c)
		require.NoError(t, err)
		defer tr.Close()
		m, err := tr.Step(b)
		require.NoError(t, err)
		require.False(t, m.Skipped)
		return lossesOf(m)
	}
	byHand := func(c osv.TrainConfig) stepLosses {
		d, err := discriminator.New(bb, discriminator.DefaultConfig(), 3)
		require.NoError(t, err)
		defer d.Close()
		h, err := newHandRecipe(u, d, c)
		require.NoError(t, err)
		defer h.Close()
		l, err := h.Step(b)
		require.NoError(t, err)
		return l
	}
	want, got := trainer(cfg), byHand(cfg)
	t.Logf("trainer %+v", want)
	t.Logf("by hand %+v", got)
	require.Equal(t, want.Sigma, got.Sigma, "σ_n")
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"loss_g", got.LossG, want.LossG}, {"loss_dist", got.LossDist, want.LossDist},
		{"loss_adv_g", got.LossAdvG, want.LossAdvG}, {"loss_d", got.LossD, want.LossD},
		{"grad_norm_g", got.GradNormG, want.GradNormG}, {"grad_norm_d", got.GradNormD, want.GradNormD},
	} {
		require.Positive(t, math.Abs(c.want), "%s is zero", c.name)
		require.LessOrEqual(t, relDiff(c.got, c.want), tol, "%s %g, trainer %g", c.name, c.got, c.want)
	}
	// Control: the recipe with neither option (λ = 1, the teacher's
	// estimate as real) is told apart in both losses.
	plain := cfg
	plain.LossWeight, plain.DiscReal = "", ""
	control := byHand(plain)
	t.Logf("without the options: loss_dist %.6g, loss_d %.6g", control.LossDist, control.LossD)
	require.Greater(t, relDiff(control.LossDist, want.LossDist), 100*tol, "λ(σ) went unnoticed")
	require.Greater(t, relDiff(control.LossD, want.LossD), 10*tol, "the real sample went unnoticed")

	s.Close()
	require.NoError(t, bb.Close())
	require.NoError(t, u.Close())
	require.Equal(t, start, torch.Live(), "native tensors leaked")
}
