package osv

import (
	"fmt"
	"math"

	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/osv/loss/adversarial"
	"github.com/onestepvideo/osv-go/osv/loss/consistency"
	"github.com/onestepvideo/osv-go/osv/loss/huber"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// recordedStep is a training step with every number it depends on in
// tensors of its own (Config.GraphStep): the batch, the noise, the grid
// levels (stage 1: σ_n; stage 2: σ_n … σ_{n+k}), λ(σ_n) and the choice of
// the discriminator's real sample. The host draws n and the noise and
// copies them in; the work itself reads nothing back, so it is recorded
// once as a CUDA graph and replayed at every later step, whatever n is.
type recordedStep struct {
	in       *torch.Scope
	batch    Batch
	noise    *torch.Tensor
	levels   consistency.Levels
	realData *torch.Tensor // [1]: 1 when the real sample is x0, 0 for the teacher's estimate
	emaW     *torch.Tensor // [1]: 1 − the EMA decay
	out      stepOutputs
	graph    *torch.Graph // nil: the work runs one operation at a time (eager)
}

// stepOutputs are a step's results, left on the device.
type stepOutputs struct {
	dist, advG, lossG, lossD, normG, normD *torch.Tensor
}

// stepInputs are one step's host-side draws.
type stepInputs struct {
	noise    *torch.Tensor
	sigmas   []float64 // stage 1: σ_n; stage 2: σ_n … σ_{n+k}
	weight   float64   // λ(σ_n)
	realData bool
}

// recorded runs the step on in through the recorded work: the first
// call fills the inputs and takes the step as the recording's warmup (or,
// with eager, as it is), later calls refill them and replay. Eager outputs
// are owned by s; a graph's are its own.
func (t *Trainer) recorded(s *torch.Scope, b Batch, in stepInputs, eager bool) (stepOutputs, error) {
	lv := make([]float32, len(in.sigmas))
	for i, v := range in.sigmas {
		lv[i] = float32(v)
	}
	real := float32(0)
	if in.realData {
		real = 1
	}
	host := torch.NewScope()
	defer host.Close()
	dev := t.device()
	levels, err := torch.FromFloat32(host, lv, []int64{int64(len(lv))}, torch.Float32, dev)
	if err != nil {
		return stepOutputs{}, err
	}
	scalars, err := torch.FromFloat32(host, []float32{float32(in.weight), real}, []int64{2}, torch.Float32, dev)
	if err != nil {
		return stepOutputs{}, err
	}
	if err := t.optG.SetLR(t.optG.LR); err != nil {
		return stepOutputs{}, err
	}
	if err := t.optD.SetLR(t.optD.LR); err != nil {
		return stepOutputs{}, err
	}
	st := t.rec
	if st == nil {
		return t.record(s, b, in, levels, scalars, eager)
	}
	if int64(len(lv)) != st.levels.Sigmas.Size(0) {
		return stepOutputs{}, fmt.Errorf("osv: recorded step: %d levels, recorded with %d", len(lv), st.levels.Sigmas.Size(0))
	}
	pairs := [][2]*torch.Tensor{{st.batch.Latents, b.Latents}, {st.batch.ImageLatents, b.ImageLatents},
		{st.batch.ImageEmbeds, b.ImageEmbeds}, {st.batch.AddedTimeIDs, b.AddedTimeIDs}, {st.noise, in.noise},
		{st.levels.Sigmas, levels}, {st.levels.Weight, host.Slice(scalars, 0, 0, 1)}, {st.realData, host.Slice(scalars, 0, 1, 2)}}
	for _, p := range pairs {
		if err := torch.CopyInto(p[0], p[1]); err != nil {
			return stepOutputs{}, fmt.Errorf("osv: recorded step: %w", err)
		}
	}
	if st.graph == nil {
		return t.deviceStep(s, st)
	}
	if err := st.graph.Replay(); err != nil {
		return stepOutputs{}, err
	}
	return st.out, nil
}

// record makes the inputs from this step's and records the work (warmup:
// this step). Eager keeps the inputs and records nothing; its outputs are
// owned by s.
func (t *Trainer) record(s *torch.Scope, b Batch, in stepInputs, levels, scalars *torch.Tensor, eager bool) (out stepOutputs, err error) {
	defer torch.Recover(&err)
	k := t.Config.SolverSteps
	is := torch.NewScope()
	st := &recordedStep{in: is,
		batch: Batch{Latents: is.Clone(b.Latents), ImageLatents: is.Clone(b.ImageLatents),
			ImageEmbeds: is.Clone(b.ImageEmbeds), AddedTimeIDs: is.Clone(b.AddedTimeIDs)},
		noise:    is.Clone(in.noise),
		realData: is.Clone(is.Slice(scalars, 0, 1, 2)),
	}
	st.levels = consistency.Levels{Sigmas: is.Clone(levels), Weight: is.Clone(is.Slice(scalars, 0, 0, 1))}
	want := int64(k + 1)
	if t.Config.Stage == 1 {
		want = 1
	} else {
		st.levels.Guidance = solver.GuidanceWeight(is, solver.FrameGuidance(t.Config.MinGuidance, t.Config.MaxGuidance, int(b.Latents.Size(1))), t.device())
	}
	if st.levels.Sigmas.Size(0) != want {
		is.Close()
		return out, fmt.Errorf("osv: recorded step: %d levels for stage %d with k = %d", st.levels.Sigmas.Size(0), t.Config.Stage, k)
	}
	ew, err := torch.Full(is, []int64{1}, 1-t.Config.EMADecay, torch.Float32, t.device())
	if err != nil {
		is.Close()
		return out, err
	}
	st.emaW = ew
	if eager {
		t.rec = st
		return t.deviceStep(s, st)
	}
	calls := 0
	var first stepOutputs
	g, err := torch.CaptureGraph(t.device(), 1, func(s *torch.Scope) error {
		calls++
		o, err := t.deviceStep(s, st)
		if err != nil {
			return err
		}
		if calls == 1 { // the warmup is this step: copy its results out
			first = stepOutputs{}
			for _, p := range [][2]**torch.Tensor{{&first.dist, &o.dist}, {&first.advG, &o.advG}, {&first.lossG, &o.lossG},
				{&first.lossD, &o.lossD}, {&first.normG, &o.normG}, {&first.normD, &o.normD}} {
				*p[0] = is.Clone(*p[1])
			}
			return nil
		}
		st.out = o
		return nil
	})
	if err != nil {
		is.Close()
		return out, err
	}
	st.graph = g
	t.rec = st
	return first, nil
}

// close releases the recording and its inputs; it is safe on nil.
func (st *recordedStep) close() {
	if st == nil {
		return
	}
	st.graph.Close()
	st.in.Close()
}

// deviceStep is Step's work over st's inputs, with every number on the
// device: the loss over the levels' tensors (stage 1: the student's
// estimate from x0 noised at σ_n against x0; stage 2: the consistency
// loss), the capturable optimisers and device clips, an EMA update that a
// non-finite gradient switches off, and the discriminator's real sample
// chosen by st.realData.
func (t *Trainer) deviceStep(s *torch.Scope, st *recordedStep) (o stepOutputs, err error) {
	defer torch.Recover(&err)
	cond := st.batch.Cond()
	x0 := s.Cast(st.batch.Latents, torch.Float32)
	cons := solver.ConsistencyOptions{LCMBoundary: t.Config.LCMBoundary}
	var fake, dist, real *torch.Tensor
	if t.Config.Stage == 1 {
		sn := st.levels.Sigmas
		xn := s.Add(x0, s.Mul(st.noise, sn))
		fake = solver.Consistency(s, t.Student.Denoiser(cond), xn, s.Contiguous(s.Expand(sn, x0.Size(0))), cons)
		dist, real = huber.Apply(s, fake, x0, t.Config.HuberC, loss.Mean), x0
	} else {
		out := consistency.ApplyLevels(s, consistency.Inputs{
			Student: t.Student.Denoiser(cond), Target: t.EMA.Denoiser(cond), Teacher: t.Teacher.Denoiser(cond),
			Data: x0, Noise: st.noise, Consistency: cons, HuberC: t.Config.HuberC,
		}, st.levels)
		fake, dist = out.Fake, out.Loss
		real = s.Lerp(out.Real, x0, st.realData) // exactly one of the two (lerp's weight is 0 or 1)
	}
	o.dist, o.lossG = dist, dist
	studentParams := t.Student.Trainable()
	discParams := tensors(t.Disc.Trainable())
	if !t.Config.NoAdversarial {
		o.advG = adversarial.GeneratorApply(s, t.judge(s, fake))
		o.lossG = s.Add(dist, s.MulScalar(o.advG, t.Config.LambdaAdv))
	} else {
		o.advG = s.Filled(dist, 0)
	}
	if o.normG, err = t.deviceUpdate(s, o.lossG, studentParams, t.optG); err != nil {
		return o, err
	}
	// θ⁻ moves unless the student's gradient was not finite (then the
	// optimiser skipped its update too).
	finite := s.Cast(s.LessScalar(s.Abs(o.normG), math.MaxFloat32), torch.Float32) // 0 for NaN and ±Inf
	if err := torch.EMADevice(t.EMA.Weights(), studentParams, s.Mul(finite, st.emaW)); err != nil {
		return o, err
	}
	if !t.Config.NoAdversarial {
		must(torch.ZeroGrads(discParams))
		o.lossD = adversarial.DiscriminatorApply(s, t.judge(s, s.Detach(real)), t.judge(s, s.Detach(fake)))
		if o.normD, err = t.deviceUpdate(s, o.lossD, discParams, t.optD); err != nil {
			return o, err
		}
	} else {
		o.lossD, o.normD = s.Filled(dist, 0), s.Filled(dist, 0)
	}
	must(torch.ZeroGrads(discParams))
	must(torch.ZeroGrads(studentParams))
	return o, nil
}

// deviceUpdate is update with the norm left on the device: the optimiser
// skips the step itself when it is not finite.
func (t *Trainer) deviceUpdate(s *torch.Scope, l *torch.Tensor, params []*torch.Tensor, opt *torch.AdamW) (*torch.Tensor, error) {
	must(torch.ZeroGrads(params))
	if err := torch.Backward(l); err != nil {
		return nil, err
	}
	n, err := torch.ClipGradNormDevice(s, params, t.Config.GradClip)
	if err != nil {
		return nil, err
	}
	opt.SkipUnlessFinite = n
	err = opt.Step()
	opt.SkipUnlessFinite = nil
	return n, err
}
