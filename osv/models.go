package osv

import (
	"fmt"

	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// Cond is one batch's conditioning, on the UNet's device: the noisy first
// frame's VAE latent z_img [B, 4, h, w] (mode, unscaled), CLIP's image
// embedding e_img [B, 1, D] and the added time ids [B, 3] (fps − 1, motion
// bucket, noise augmentation strength).
type Cond = unet.Cond

// Teacher is the frozen SVD UNet with its EDM denoiser (OSV.md section 1).
// A Student made from it shares its weights in memory; while the teacher
// runs, the student's adapters are switched off.
type Teacher struct {
	UNet *unet.Model

	student *Student // the student sharing UNet, if any
}

// NewTeacher wraps a loaded UNet. Its weights are never trained.
func NewTeacher(u *unet.Model) (*Teacher, error) {
	if u == nil || u.Closed() {
		return nil, fmt.Errorf("osv: teacher: the UNet is nil or closed")
	}
	return &Teacher{UNet: u}, nil
}

// Denoiser is the teacher's guided denoiser D(x; σ) for the conditioning c
// (both classifier-free-guidance branches; the unconditional one sees zero
// image latents and embeddings), for the solver package's samplers and
// solvers and the consistency loss. The conditioning's tensors must stay
// alive while the denoiser is used.
func (t *Teacher) Denoiser(c Cond) solver.PairDenoiser {
	return branchDenoiser{g: newGuided(t.UNet, c), enter: t.enter}
}

// enter switches the shared UNet to the base weights.
func (t *Teacher) enter() func() {
	if t.student == nil || t.student.LoRA == nil {
		return func() {}
	}
	if t.student.LoRA.Merged() {
		torch.Failf("teacher", "the student's adapters are merged into the shared UNet: unmerge them to run the teacher")
	}
	t.student.LoRA.Enable(false)
	return func() { t.student.LoRA.Enable(true) }
}

// Student is the one-step generator θ: the teacher's weights plus
// trainable LoRA adapters (float32), sharing the teacher's UNet in memory.
type Student struct {
	Teacher *Teacher
	LoRA    *lora.Set
}

// NewStudent attaches fresh adapters (seeded A, zero B: at first the
// student equals the teacher) to the teacher's UNet and makes them
// trainable. A teacher carries one student at a time.
func NewStudent(t *Teacher, cfg lora.Config, seed uint64) (*Student, error) {
	if err := studentFree(t); err != nil {
		return nil, err
	}
	set, err := lora.Inject(t.UNet, cfg, seed)
	if err != nil {
		return nil, err
	}
	return newStudent(t, set)
}

// LoadStudent attaches a peft LoRA folder (adapter_config.json,
// adapter_model.safetensors) to the teacher's UNet as a trainable student.
func LoadStudent(t *Teacher, dir string) (*Student, error) {
	if err := studentFree(t); err != nil {
		return nil, err
	}
	set, err := lora.Load(t.UNet, dir)
	if err != nil {
		return nil, err
	}
	return newStudent(t, set)
}

func studentFree(t *Teacher) error {
	switch {
	case t == nil || t.UNet == nil || t.UNet.Closed():
		return fmt.Errorf("osv: student: the teacher is nil or closed")
	case t.student != nil:
		return fmt.Errorf("osv: student: the teacher already carries a student (close it first)")
	}
	return nil
}

func newStudent(t *Teacher, set *lora.Set) (*Student, error) {
	for _, p := range set.Trainable() {
		if err := p.T.SetRequiresGrad(true); err != nil {
			set.Close()
			return nil, fmt.Errorf("osv: student: %s: %w", p.Name, err)
		}
	}
	s := &Student{Teacher: t, LoRA: set}
	t.student = s
	return s, nil
}

// Denoiser is the student's guided denoiser for the conditioning c; its
// results carry the gradient of the adapters.
func (s *Student) Denoiser(c Cond) solver.PairDenoiser {
	return branchDenoiser{g: newGuided(s.Teacher.UNet, c), enter: func() func() { return func() {} }}
}

// Trainable lists the adapters' tensors (A and B of every adapted layer),
// in a fixed order: the optimiser's parameters.
func (s *Student) Trainable() []*torch.Tensor { return tensors(s.LoRA.Trainable()) }

// Names lists the checkpoint keys of Trainable's tensors, in its order.
func (s *Student) Names() []string {
	ps := s.LoRA.Trainable()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// Close removes the adapters from the teacher's UNet and frees them.
func (s *Student) Close() error {
	if s == nil || s.LoRA == nil {
		return nil
	}
	err := s.LoRA.Close()
	s.LoRA = nil
	if s.Teacher != nil && s.Teacher.student == s {
		s.Teacher.student = nil
	}
	return err
}

// EMA is the target network θ⁻ of consistency distillation: a copy of the
// student's adapters, moved towards the student after each update
// (θ⁻ ← μ·θ⁻ + (1 − μ)·θ). It runs on the student's shared UNet by
// swapping its adapter weights in for the duration of a call.
type EMA struct {
	student *Student
	weights []*torch.Tensor // one per Student.Trainable tensor
}

// NewEMA starts θ⁻ as an independent copy of the student's θ.
func NewEMA(s *Student) (e *EMA, err error) {
	defer torch.Recover(&err)
	if s == nil || s.LoRA == nil {
		return nil, fmt.Errorf("osv: ema: the student is nil or closed")
	}
	e = &EMA{student: s}
	for _, p := range s.Trainable() {
		sc := torch.NewScope()
		e.weights = append(e.weights, sc.Keep(sc.Clone(sc.Detach(p))))
		sc.Close()
	}
	return e, nil
}

// Update moves θ⁻ towards the student: θ⁻ ← decay·θ⁻ + (1 − decay)·θ.
func (e *EMA) Update(s *Student, decay float64) error {
	if err := e.check(s); err != nil {
		return err
	}
	if !(decay >= 0 && decay <= 1) {
		return fmt.Errorf("osv: ema: decay %g: want a value in [0, 1]", decay)
	}
	return torch.EMA(e.weights, s.Trainable(), decay)
}

// CopyFrom sets θ⁻ = θ.
func (e *EMA) CopyFrom(s *Student) error {
	if err := e.check(s); err != nil {
		return err
	}
	for i, p := range s.Trainable() {
		if err := torch.CopyInto(e.weights[i], p); err != nil {
			return fmt.Errorf("osv: ema: %w", err)
		}
	}
	return nil
}

func (e *EMA) check(s *Student) error {
	switch {
	case e == nil || e.weights == nil:
		return fmt.Errorf("osv: ema is closed")
	case s == nil || s.LoRA == nil:
		return fmt.Errorf("osv: ema: the student is nil or closed")
	case len(s.LoRA.Trainable()) != len(e.weights):
		return fmt.Errorf("osv: ema: %d tensors, the student has %d", len(e.weights), len(s.LoRA.Trainable()))
	}
	return nil
}

// Weights are θ⁻'s tensors, in the order of Student.Trainable.
func (e *EMA) Weights() []*torch.Tensor { return e.weights }

// Denoiser is θ⁻'s guided denoiser for the conditioning c (no gradient
// flows into θ⁻: its tensors do not require one).
func (e *EMA) Denoiser(c Cond) solver.PairDenoiser {
	return branchDenoiser{g: newGuided(e.student.Teacher.UNet, c), enter: e.enter}
}

// enter swaps θ⁻ into the student's adapters; the returned function swaps back.
func (e *EMA) enter() func() {
	if e.weights == nil || e.student.LoRA == nil {
		torch.Failf("ema", "the EMA or its student is closed")
	}
	if e.student.LoRA.Merged() {
		torch.Failf("ema", "the student's adapters are merged into the shared UNet: unmerge them to run the EMA")
	}
	swap := func() {
		for i, p := range e.student.LoRA.Trainable() {
			p.T, e.weights[i] = e.weights[i], p.T
		}
	}
	swap()
	return swap
}

// Close frees θ⁻.
func (e *EMA) Close() {
	if e == nil {
		return
	}
	for _, w := range e.weights {
		w.Free()
	}
	e.weights = nil
}

// branchDenoiser evaluates the shared UNet in one branch (teacher, student
// or EMA): enter switches the UNet over and returns the way back.
type branchDenoiser struct {
	g     *guidedDenoiser
	enter func() func()
}

func (d branchDenoiser) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	defer d.enter()()
	return d.g.Denoise(s, x, sigma, cond)
}

func (d branchDenoiser) DenoisePair(s *torch.Scope, x, sigma *torch.Tensor) (uncond, cond *torch.Tensor) {
	defer d.enter()()
	return d.g.DenoisePair(s, x, sigma)
}

func newGuided(u *unet.Model, c Cond) *guidedDenoiser {
	return &guidedDenoiser{d: &unet.Denoiser{UNet: u}, z: c.ImageLatents, emb: c.ImageEmbeds, ids: c.AddedTimeIDs}
}

// Cond is the batch's conditioning.
func (b Batch) Cond() Cond {
	return Cond{ImageLatents: b.ImageLatents, ImageEmbeds: b.ImageEmbeds, AddedTimeIDs: b.AddedTimeIDs}
}
