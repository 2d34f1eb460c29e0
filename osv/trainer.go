package osv

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/onestepvideo/osv-go/discriminator"
	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/osv/loss/adversarial"
	"github.com/onestepvideo/osv-go/osv/loss/consistency"
	"github.com/onestepvideo/osv-go/osv/loss/huber"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// Batch is one training batch from the latent cache, on the UNet's device.
type Batch struct {
	Latents      *torch.Tensor // x0: the clip's VAE latents, scaled: [B, F, 4, h, w]
	ImageLatents *torch.Tensor // z_img: the noisy first frame's latent (mode, unscaled): [B, 4, h, w]
	ImageEmbeds  *torch.Tensor // e_img: CLIP image_embeds [B, 1, D]
	AddedTimeIDs *torch.Tensor // [B, 3]: fps − 1, motion bucket, noise augmentation
}

// Metrics are one step's numbers.
// With Trainer.Group set, the losses are the means over the ranks (the
// world's batch) and the gradient norms are those of the averaged
// gradients, the same on every rank.
type Metrics struct {
	Step      int64   `json:"step"`
	Sigma     float64 `json:"sigma"`       // σ_n of the step
	LossG     float64 `json:"loss_g"`      // the student's whole loss
	LossDist  float64 `json:"loss_dist"`   // stage 1: d(x̂0, x0); stage 2: L_CD
	LossAdvG  float64 `json:"loss_adv_g"`  // −mean D(fake)
	LossD     float64 `json:"loss_d"`      // the discriminator's hinge loss
	GradNormG float64 `json:"grad_norm_g"` // before clipping
	GradNormD float64 `json:"grad_norm_d"`
	LR        float64 `json:"lr"`                    // the student's learning rate
	DiscLR    float64 `json:"disc_lr"`               // the discriminator's learning rate
	GPUMemGiB float64 `json:"gpu_mem_gib,omitempty"` // peak CUDA memory allocated so far
	Skipped   bool    `json:"skipped"`               // a non-finite gradient: no update
}

// Trainer runs OSV's stage 1 (latent GAN pretraining) or stage 2
// (adversarial consistency distillation) with the typed models on one UNet:
// the frozen Teacher is its base weights, the Student adds trainable LoRA
// adapters, and the EMA target θ⁻ is a copy of the adapters; one set of
// base weights serves all three. NewTrainer makes them and Close frees
// them: use them (their denoisers, the adapters, θ⁻) between steps, but do
// not replace or close them. Step may be called from one goroutine at a
// time.
type Trainer struct {
	Config  TrainConfig
	Teacher *Teacher // the frozen teacher (its UNet is the caller's)
	Student *Student // θ: the teacher plus the trainer's LoRA adapters
	EMA     *EMA     // θ⁻, moved towards θ after each student update
	Disc    *discriminator.Discriminator
	// Decode maps latents [B, F, C, h, w] to frames [B·F, 3, H, W] in
	// [−1, 1] (SVD's VAE decoder, say). It is needed, and used, only when
	// the discriminator judges pixels (its Config.PixelInput): the ablation
	// of OSV's latent discriminator.
	Decode func(s *torch.Scope, latents *torch.Tensor) *torch.Tensor
	// Group, when set, makes the trainer one rank of a data-parallel
	// world: every rank steps on its own batch of the same size, its noise
	// is its slice of noise drawn for the whole world's batch (so the world
	// reproduces one process with the combined batch), and the gradients
	// are averaged over the ranks before clipping, bucket by bucket while
	// the backward runs (torch.GradReducer). Start every rank from the
	// same state (same seed, or Broadcast). Metrics are the world's.
	Group *torch.ProcessGroup

	optG, optD *torch.AdamW
	gen        *torch.Generator
	grid       []float64
	step       int64
	nonFinite  int

	teacherGraphs, targetGraphs *denoiserGraphs // GraphDenoisers: the frozen branches' recorded calls
	rec                         *recordedStep   // GraphStep: the recorded step
	eagerRec                    bool            // run GraphStep's work without recording it (the CPU's check of it)

	reducers     map[*torch.AdamW]*torch.GradReducer // per optimiser, for reducerGroup
	reducerGroup *torch.ProcessGroup
}

// NewTrainer makes the teacher of u, attaches a student's fresh LoRA
// adapters to u (its weights stay frozen), starts the EMA target at θ⁻ = θ
// and prepares the optimisers. d's trainable parts are trained alongside.
func NewTrainer(u *unet.Model, d *discriminator.Discriminator, cfg TrainConfig) (t *Trainer, err error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if u == nil || d == nil {
		return nil, fmt.Errorf("osv: a trainer needs a UNet and a discriminator")
	}
	teacher, err := NewTeacher(u)
	if err != nil {
		return nil, err
	}
	targets := cfg.LoRATargets
	if len(targets) == 0 {
		targets = lora.DefaultTargets
	}
	student, err := NewStudent(teacher, lora.Config{R: cfg.LoRARank, LoraAlpha: cfg.LoRAAlpha, TargetModules: targets}, cfg.Seed)
	if err != nil {
		return nil, err
	}
	t = &Trainer{Config: cfg, Teacher: teacher, Student: student, Disc: d, grid: cfg.grid()}
	made := t // the returns below set t to nil before this runs
	defer func() {
		if err != nil {
			made.Close()
			t = nil
		}
	}()
	if t.EMA, err = NewEMA(student); err != nil {
		return nil, err
	}
	if t.optG, err = torch.NewAdamW(student.Trainable(), cfg.LR, cfg.Beta1, cfg.Beta2, cfg.AdamEps, cfg.WeightDecay); err != nil {
		return nil, err
	}
	if t.optD, err = torch.NewAdamW(tensors(d.Trainable()), cfg.DiscLR, cfg.Beta1, cfg.Beta2, cfg.AdamEps, cfg.WeightDecay); err != nil {
		return nil, err
	}
	t.optG.Foreach, t.optD.Foreach = cfg.Foreach, cfg.Foreach
	if cfg.GraphStep {
		dev := u.Device()
		switch {
		case !dev.CUDA:
			return nil, fmt.Errorf("osv: graph_step needs the UNet on a CUDA device, not %v", dev)
		case cfg.GraphDenoisers:
			return nil, fmt.Errorf("osv: graph_step records the denoisers' calls too: leave graph_denoisers off")
		case d.Config.PixelInput:
			return nil, fmt.Errorf("osv: graph_step does not record a pixel discriminator (pixel_input), whose input constants are uploaded at each call")
		}
		t.optG.Capturable, t.optD.Capturable = true, true
	}
	if cfg.GraphDenoisers {
		dev := u.Device()
		if !dev.CUDA {
			return nil, fmt.Errorf("osv: graph_denoisers needs the UNet on a CUDA device, not %v", dev)
		}
		t.teacherGraphs = newDenoiserGraphs(t.Teacher.Denoiser, dev)
		t.targetGraphs = newDenoiserGraphs(t.EMA.Denoiser, dev)
	}
	if t.gen, err = torch.NewGenerator(cfg.Seed); err != nil {
		return nil, err
	}
	d.SetTraining(true)
	return t, nil
}

func tensors(ps []*torch.Param) []*torch.Tensor {
	out := make([]*torch.Tensor, len(ps))
	for i, p := range ps {
		out[i] = p.T
	}
	return out
}

// Steps is the number of steps taken.
func (t *Trainer) Steps() int64 { return t.step }

// Close removes the student's adapters from the UNet and frees the
// trainer's state (not the UNet or the discriminator).
func (t *Trainer) Close() error {
	if t == nil {
		return nil
	}
	t.closeReducers()
	t.teacherGraphs.close()
	t.targetGraphs.close()
	t.rec.close()
	t.rec = nil
	t.EMA.Close()
	t.EMA = nil
	if t.optG != nil {
		t.optG.Close()
	}
	if t.optD != nil {
		t.optD.Close()
	}
	t.gen.Close()
	return t.Student.Close()
}

// closed reports a trainer whose student is gone.
func (t *Trainer) closed() bool {
	return t.Student == nil || t.Student.LoRA == nil || t.EMA == nil || t.Teacher == nil
}

// device is the UNet's device.
func (t *Trainer) device() torch.Device { return t.Teacher.UNet.Device() }

// Step takes one training step of the configured stage on b (OSV.md
// sections 3 and 4): the student's loss (in stage 2 weighted by
// Config.LossWeight's λ(σ_n)), its clipped AdamW update and the EMA
// update, then the discriminator's (unless Config.NoAdversarial), whose
// real sample in stage 2 follows Config.DiscReal and DiscRealMaxSigma.
// Its random draws are reproducible: step t (counting from 1) takes the
// grid index n = rand.New(rand.NewPCG(Config.Seed, t)).IntN(N) in stage 1
// and IntN(N − k) in stage 2 (math/rand/v2; N the grid size, k the solver
// steps), and its unit noise is one float32 Randn of the latents' shape
// from a torch.Generator seeded with Config.Seed when the trainer was made.
func (t *Trainer) Step(b Batch) (m Metrics, err error) {
	// PyTorch orders the backward pass by sequence numbers that each OS
	// thread counts on its own; a graph built on one thread back-propagates
	// in the same order every time, so that steps are reproducible.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer torch.Recover(&err)
	if t.closed() {
		return m, fmt.Errorf("osv: trainer is closed")
	}
	if err := checkBatch(b, t.device()); err != nil {
		return m, err
	}
	if t.Disc.Config.PixelInput && t.Decode == nil && !t.Config.NoAdversarial {
		return m, fmt.Errorf("osv: the discriminator judges pixels (pixel_input) but the trainer has no Decode")
	}
	s := torch.NewScope()
	defer s.Close()
	t.step++
	m.Step = t.step
	m.LR, m.DiscLR = t.optG.LR, t.optD.LR
	if dev := t.device(); dev.CUDA {
		if mem, err := torch.CUDAMemory(dev); err == nil {
			m.GPUMemGiB = float64(mem.Peak) / (1 << 30)
		}
	}
	// Grid indices come from the step number, so a resumed run draws the same.
	r := rand.New(rand.NewPCG(t.Config.Seed, uint64(t.step)))
	cond := b.Cond()
	student := t.Student.Denoiser(cond)
	noise, err := t.noise(s, b.Latents)
	if err != nil {
		return m, err
	}
	x0 := s.Cast(b.Latents, torch.Float32)
	cons := solver.ConsistencyOptions{LCMBoundary: t.Config.LCMBoundary}

	var fake, real, dist *torch.Tensor
	if t.Config.GraphStep || t.eagerRec {
		if t.Group != nil {
			return m, fmt.Errorf("osv: graph_step does not run in a data-parallel world")
		}
		in := stepInputs{noise: noise, weight: 1, realData: true}
		if t.Config.Stage == 1 {
			n := r.IntN(len(t.grid))
			m.Sigma = t.grid[n]
			in.sigmas = t.grid[n : n+1]
		} else {
			k, sigmas := t.levels(r, &m)
			in.sigmas, in.realData = sigmas, t.Config.realIsData(sigmas[k-1])
			if w := t.Config.lossWeight(sigmas); w != nil {
				in.weight = w(sigmas[0])
			}
		}
		o, err := t.recorded(s, b, in, t.eagerRec)
		if err != nil {
			return m, err
		}
		return t.recordedMetrics(m, o)
	} else if t.Config.Stage == 1 {
		n := r.IntN(len(t.grid))
		m.Sigma = t.grid[n]
		sig := s.Filled(x0, m.Sigma, x0.Size(0))
		xn := s.Add(x0, s.MulScalar(noise, m.Sigma))
		fake = solver.Consistency(s, student, xn, sig, cons)
		dist = huber.Apply(s, fake, x0, t.Config.HuberC, loss.Mean)
		real = x0
	} else {
		k, sigmas := t.levels(r, &m)
		target, teacher := t.EMA.Denoiser(cond), t.Teacher.Denoiser(cond)
		if t.teacherGraphs != nil {
			target, teacher = t.targetGraphs.bind(cond), t.teacherGraphs.bind(cond)
		}
		out := consistency.Apply(s, consistency.Inputs{
			Student: student, Target: target, Teacher: teacher,
			Data: x0, Noise: noise, Sigmas: sigmas,
			Guidance:    solver.FrameGuidance(t.Config.MinGuidance, t.Config.MaxGuidance, int(x0.Size(1))),
			Consistency: cons, HuberC: t.Config.HuberC, Weight: t.Config.lossWeight(sigmas),
		})
		fake, real, dist = out.Fake, out.Real, out.Loss
		if t.Config.realIsData(sigmas[k-1]) {
			real = x0
		}
	}
	m.LossDist = item(dist)

	// The student: distance plus the adversarial term, one update, the EMA.
	studentParams := t.Student.Trainable()
	discParams := tensors(t.Disc.Trainable())
	lossG := dist
	if !t.Config.NoAdversarial {
		adv := adversarial.GeneratorApply(s, t.judge(s, fake))
		m.LossAdvG = item(adv)
		lossG = s.Add(dist, s.MulScalar(adv, t.Config.LambdaAdv))
	}
	m.LossG = item(lossG)
	if err := t.update(lossG, studentParams, t.optG, &m.GradNormG, &m.Skipped); err != nil {
		return m, err
	}
	if !m.Skipped {
		if err := t.EMA.Update(t.Student, t.Config.EMADecay); err != nil {
			return m, err
		}
	}

	// The discriminator: real against the detached fake.
	if !t.Config.NoAdversarial {
		must(torch.ZeroGrads(discParams))
		lossD := adversarial.DiscriminatorApply(s, t.judge(s, s.Detach(real)), t.judge(s, s.Detach(fake)))
		m.LossD = item(lossD)
		skipped := false
		if err := t.update(lossD, discParams, t.optD, &m.GradNormD, &skipped); err != nil {
			return m, err
		}
		m.Skipped = m.Skipped || skipped
	}
	must(torch.ZeroGrads(discParams))
	must(torch.ZeroGrads(studentParams))
	if err := t.worldLosses(s, &m); err != nil {
		return m, err
	}
	return m, t.countSkipped(m)
}

// countSkipped counts a step with a skipped update; a step counts once
// however many of its updates were skipped. Too many in a row is an error.
func (t *Trainer) countSkipped(m Metrics) error {
	if !m.Skipped {
		t.nonFinite = 0
	} else if t.nonFinite++; t.nonFinite >= t.Config.MaxNonFinite {
		return fmt.Errorf("osv: %d training steps in a row with non-finite gradients (step %d); stopping", t.nonFinite, t.step)
	}
	return nil
}

// levels draws stage 2's grid index n and returns k and σ_n … σ_{n+k}
// (m.Sigma = σ_n).
func (t *Trainer) levels(r *rand.Rand, m *Metrics) (int, []float64) {
	k := t.Config.SolverSteps
	n := r.IntN(len(t.grid) - k)
	m.Sigma = t.grid[n]
	return k, t.grid[n : n+k+1]
}

// recordedMetrics reads a recorded step's results into m and counts a
// skipped (non-finite) update as Step does.
func (t *Trainer) recordedMetrics(m Metrics, o stepOutputs) (Metrics, error) {
	for _, p := range []struct {
		dst *float64
		src *torch.Tensor
	}{{&m.LossDist, o.dist}, {&m.LossAdvG, o.advG}, {&m.LossG, o.lossG}, {&m.LossD, o.lossD}, {&m.GradNormG, o.normG}, {&m.GradNormD, o.normD}} {
		v, err := p.src.Item()
		if err != nil {
			return m, err
		}
		*p.dst = v
	}
	m.Skipped = !torch.Finite(m.GradNormG) || !torch.Finite(m.GradNormD)
	return m, t.countSkipped(m)
}

// worldLosses replaces m's losses, in a data-parallel world, by their
// means over the ranks: the losses of the world's whole batch.
func (t *Trainer) worldLosses(s *torch.Scope, m *Metrics) error {
	if t.Group == nil || t.Group.Config.World == 1 {
		return nil
	}
	dev := torch.CPU
	if t.Group.Config.Backend == torch.NCCL {
		dev = t.device()
	}
	ls := []*float64{&m.LossG, &m.LossDist, &m.LossAdvG, &m.LossD}
	v := make([]float32, len(ls))
	for i, l := range ls {
		v[i] = float32(*l)
	}
	x, err := torch.FromFloat32(s, v, []int64{int64(len(v))}, torch.Float32, dev)
	if err != nil {
		return err
	}
	if err := t.Group.AllReduceMean([]*torch.Tensor{x}); err != nil {
		return err
	}
	if v, err = x.Float32s(); err != nil {
		return err
	}
	for i, l := range ls {
		*l = float64(v[i])
	}
	return nil
}

// noise draws unit noise like x; in a data-parallel world, this rank's
// slice of the noise for the whole world's batch.
func (t *Trainer) noise(s *torch.Scope, x *torch.Tensor) (*torch.Tensor, error) {
	shape := x.Shape()
	if t.Group == nil || t.Group.Config.World == 1 {
		return t.gen.Randn(s, shape, torch.Float32, x.Device())
	}
	b, w, r := shape[0], int64(t.Group.Config.World), int64(t.Group.Config.Rank)
	shape[0] = b * w
	all, err := t.gen.Randn(s, shape, torch.Float32, x.Device())
	if err != nil {
		return nil, err
	}
	return s.Slice(all, 0, r*b, (r+1)*b), nil
}

// Broadcast copies rank 0's whole training state (LoRA, EMA, the
// discriminator, both optimisers) to every rank of t.Group.
func (t *Trainer) Broadcast() error {
	if t.Group == nil {
		return nil
	}
	if t.closed() {
		return fmt.Errorf("osv: trainer is closed")
	}
	st := t.state()
	keys := slices.Sorted(maps.Keys(st)) // the same order on every rank
	ts := make([]*torch.Tensor, len(keys))
	for i, k := range keys {
		ts[i] = st[k]
	}
	return t.Group.Broadcast(ts, 0)
}

// judge is the discriminator's logits for latents x [B, F, C, h, w]: read
// directly, or through Decode for a pixel discriminator.
func (t *Trainer) judge(s *torch.Scope, x *torch.Tensor) []*torch.Tensor {
	if !t.Disc.Config.PixelInput {
		return t.Disc.Apply(s, x)
	}
	c := s.Child()
	defer c.Close()
	out := t.Disc.ApplyPixels(c, t.Decode(c, x), x.Size(1))
	for _, o := range out {
		c.Keep(o)
	}
	return out
}

// update back-propagates l into params (their old gradients dropped),
// clips, and steps opt unless the gradient is not finite (then it sets
// *skipped; Step counts the non-finite steps).
func (t *Trainer) update(l *torch.Tensor, params []*torch.Tensor, opt *torch.AdamW, norm *float64, skipped *bool) error {
	must(torch.ZeroGrads(params))
	// In a data-parallel world the gradients are averaged over the ranks
	// while the backward runs.
	red, err := t.reducer(opt, params)
	if err != nil {
		return err
	}
	if red != nil {
		if err := red.Arm(); err != nil {
			return err
		}
	}
	if err := torch.Backward(l); err != nil {
		return err
	}
	if red != nil {
		if _, err := red.Finish(); err != nil {
			return err
		}
	}
	clip := torch.ClipGradNorm
	if t.Config.Foreach {
		clip = torch.ClipGradNormForeach
	}
	n, err := clip(params, t.Config.GradClip)
	if err != nil {
		return err
	}
	*norm = n
	if !torch.Finite(n) {
		*skipped = true
		return nil
	}
	return opt.Step()
}

// reducer is the gradient reducer of the parameters opt updates, made on
// first use for the current Group (nil outside a data-parallel world).
func (t *Trainer) reducer(opt *torch.AdamW, params []*torch.Tensor) (*torch.GradReducer, error) {
	if t.Group == nil || t.Group.Config.World == 1 {
		return nil, nil
	}
	if t.reducers == nil || t.reducerGroup != t.Group {
		t.closeReducers()
		t.reducers, t.reducerGroup = map[*torch.AdamW]*torch.GradReducer{}, t.Group
	}
	if r := t.reducers[opt]; r != nil {
		return r, nil
	}
	r, err := t.Group.NewGradReducer(params)
	if err != nil {
		return nil, err
	}
	t.reducers[opt] = r
	return r, nil
}

func (t *Trainer) closeReducers() {
	for _, r := range t.reducers {
		r.Close()
	}
	t.reducers = nil
}

func item(x *torch.Tensor) float64 {
	v, err := x.Item()
	must(err)
	return v
}

func must(err error) {
	if err != nil {
		panic(&torch.Error{Op: "train", Err: err})
	}
}

func checkBatch(b Batch, dev torch.Device) error {
	for name, x := range map[string]*torch.Tensor{"latents": b.Latents, "image_latents": b.ImageLatents, "image_embeds": b.ImageEmbeds, "added_time_ids": b.AddedTimeIDs} {
		if x.Released() {
			return fmt.Errorf("osv: batch: %s is missing", name)
		}
		if x.Device() != dev {
			return fmt.Errorf("osv: batch: %s on %s, the UNet is on %s", name, x.Device(), dev)
		}
	}
	if b.Latents.Dim() != 5 {
		return fmt.Errorf("osv: batch: latents shape %v, want [batch, frames, channels, height, width]", b.Latents.Shape())
	}
	return nil
}

// BatchOf makes a batch of one clip from a latent cache entry.
func BatchOf(s *torch.Scope, e data.Entry) Batch {
	l := e.Latents
	z := e.ImageLatents
	return Batch{
		Latents:      s.Reshape(l, append([]int64{1}, l.Shape()...)...),
		ImageLatents: s.Reshape(z, append([]int64{1}, z.Shape()...)...),
		ImageEmbeds:  s.Reshape(e.ImageEmbeds, 1, 1, e.ImageEmbeds.Size(-1)),
		AddedTimeIDs: s.Reshape(e.AddedTimeIDs, 1, -1),
	}
}
