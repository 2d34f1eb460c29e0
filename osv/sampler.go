package osv

import (
	"fmt"
	"math"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// Sampler turns the initial unit noise into clean latents with a denoiser:
// the teacher's EulerSampler (the default), the distilled student's
// ConsistencySampler or TTSSampler, or a caller's own.
type Sampler interface {
	// Defaults are the step count and the guidance scales of the first and
	// last frame that Generate uses where GenerateOptions leaves them 0.
	Defaults() (steps int, minGuidance, maxGuidance float64)
	// Sample returns the clean latents [B, F, C, h, w] (float32, owned by
	// s) from unit noise of that shape, with d the conditioned denoiser.
	// It panics with *torch.Error.
	Sample(s *torch.Scope, d solver.PairDenoiser, noise *torch.Tensor, r SampleRun) *torch.Tensor
}

// SampleRun is what a Sampler is given besides the denoiser and the noise.
type SampleRun struct {
	Steps int // the number of steps (≥ 1)
	// Guidance is the classifier-free guidance scale of each frame; all
	// ones (or nil) mean no guidance: the conditional branch alone.
	Guidance []float64
	// Scheduler is the pipeline's Euler scheduler configuration (the
	// EulerSampler's schedule; the zero value is SVD's).
	Scheduler solver.SchedulerConfig
	// Generator draws the samplers' fresh noise (may be nil when every
	// draw is given).
	Generator *torch.Generator
	// Step, when set, is called after step i of total with the step's
	// result; an error from it (a cancelled context, say) stops sampling.
	Step func(i, total int, x *torch.Tensor) error
}

func (r SampleRun) guidance() []float64 {
	for _, g := range r.Guidance {
		if g != 1 {
			return r.Guidance
		}
	}
	return nil
}

func (r SampleRun) step(total int) func(int, *torch.Tensor) error {
	if r.Step == nil {
		return nil
	}
	return func(i int, x *torch.Tensor) error { return r.Step(i, total, x) }
}

// EulerSampler is SVD's own sampling: the Euler scheduler of the pipeline
// (its scheduler_config.json) with per-frame classifier-free guidance.
// Defaults: 25 steps, guidance 1 (first frame) to 3 (last).
type EulerSampler struct{}

// Defaults returns 25 steps and guidance from 1 to 3.
func (EulerSampler) Defaults() (int, float64, float64) { return 25, 1, 3 }

// Sample runs the scheduler's steps from noise times its initial σ.
func (EulerSampler) Sample(s *torch.Scope, d solver.PairDenoiser, noise *torch.Tensor, r SampleRun) *torch.Tensor {
	cfg := r.Scheduler
	if cfg.NumTrainTimesteps == 0 {
		cfg = solver.DefaultSchedulerConfig()
	}
	sched, err := solver.NewScheduler(cfg)
	if err != nil {
		torch.Failf("euler_sampler", "%v", err)
	}
	if err := sched.SetTimesteps(r.Steps); err != nil {
		torch.Failf("euler_sampler", "%v", err)
	}
	sigmas := make([]float64, 0, r.Steps+1)
	for _, sg := range sched.Sigmas() {
		sigmas = append(sigmas, float64(sg))
	}
	guidance := r.Guidance
	if r.guidance() == nil {
		guidance = make([]float64, noise.Size(1))
		for i := range guidance {
			guidance[i] = 1
		}
	}
	c := s.Child()
	defer c.Close()
	x := c.MulScalar(c.Cast(noise, torch.Float32), sched.InitNoiseSigma())
	var cb func(int, *torch.Tensor) error
	if r.Step != nil {
		cb = func(i int, x *torch.Tensor) error { return r.Step(i, len(sigmas)-1, x) }
	}
	return c.Keep(solver.SampleEulerCFG(c, d, x, sigmas, guidance, cb))
}

// ConsistencySchedule is the σ grid a consistency student was trained on,
// and where its sampling steps sit: Levels Karras levels over
// [SigmaMin, SigmaMax] with exponent Rho, of which N steps take the levels
// i·⌊Levels/N⌋, i = 0..N−1, from the top (AnimateLCM-SVD's rule). The
// first input is the unit noise times √(σ_0² + SigmaData²) (SigmaData 0:
// σ_0, as OSV trains).
type ConsistencySchedule struct {
	Levels             int
	SigmaMin, SigmaMax float64
	Rho                float64
	SigmaData          float64
}

// OSVSchedule is OSV's training grid (TrainConfig's defaults): 100 levels
// over [0.002, 700], ρ 7; the first input is σ_0·ε.
func OSVSchedule() ConsistencySchedule {
	c := TrainConfig{}.Defaults()
	return ConsistencySchedule{Levels: c.GridSize, SigmaMin: c.SigmaMin, SigmaMax: c.SigmaMax, Rho: c.Rho}
}

// AnimateLCMSchedule is AnimateLCM-SVD's scheduler: 40 levels over
// [0.002, 700], ρ 7, σ_d 1.
func AnimateLCMSchedule() ConsistencySchedule {
	return ConsistencySchedule{Levels: 40, SigmaMin: 0.002, SigmaMax: 700, Rho: 7, SigmaData: 1}
}

// Validate reports a schedule that cannot be sampled.
func (c ConsistencySchedule) Validate() error {
	switch {
	case c.Levels < 1:
		return fmt.Errorf("consistency schedule: %d levels: want at least 1", c.Levels)
	case !(c.SigmaMin > 0) || !(c.SigmaMax > c.SigmaMin) || math.IsInf(c.SigmaMax, 0):
		return fmt.Errorf("consistency schedule: σ range [%g, %g] is empty", c.SigmaMin, c.SigmaMax)
	case !(c.Rho > 0):
		return fmt.Errorf("consistency schedule: ρ %g: want > 0", c.Rho)
	case c.SigmaData < 0:
		return fmt.Errorf("consistency schedule: σ_d %g: want ≥ 0", c.SigmaData)
	}
	return nil
}

// Sigmas are the n steps' levels, decreasing, rounded to float32 as the
// samplers evaluate them.
func (c ConsistencySchedule) Sigmas(n int) ([]float64, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if n < 1 || n > c.Levels {
		return nil, fmt.Errorf("consistency schedule: %d steps: want 1 to %d (its levels)", n, c.Levels)
	}
	grid := solver.KarrasSigmas(c.Levels, c.SigmaMin, c.SigmaMax, c.Rho)
	ratio := c.Levels / n
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(float32(grid[i*ratio]))
	}
	return out, nil
}

// InitSigma is the scale of the first input for steps starting at σ_0.
func (c ConsistencySchedule) InitSigma(sigma0 float64) float64 {
	return math.Sqrt(sigma0*sigma0 + c.SigmaData*c.SigmaData)
}

// ConsistencySampler is multistep consistency sampling of a distilled
// student: at each step x̂0 = f(x, σ_n) (the student's denoiser), then
// x = x̂0 + σ_{n+1}·ε_n. Defaults: 4 steps, no guidance (AnimateLCM-SVD
// guides per frame when asked: set GenerateOptions' guidance scales).
type ConsistencySampler struct {
	// Schedule is the σ grid (the zero value: OSVSchedule).
	Schedule ConsistencySchedule
	// Consistency chooses the consistency function over the denoiser
	// (the zero value: f = D, as OSV and AnimateLCM-SVD take it).
	Consistency solver.ConsistencyOptions
	// StepNoise, when set, is the unit noise ε_n of each step but the
	// last, [1, F, C, h, w] on the pipeline's device; it replaces the
	// seeded draws.
	StepNoise []gotorch.Tensor
}

// Defaults returns 4 steps and no guidance.
func (ConsistencySampler) Defaults() (int, float64, float64) { return 4, 1, 1 }

func (c ConsistencySampler) schedule() ConsistencySchedule {
	if c.Schedule == (ConsistencySchedule{}) {
		return OSVSchedule()
	}
	return c.Schedule
}

// Sample runs r.Steps steps of the schedule.
func (c ConsistencySampler) Sample(s *torch.Scope, d solver.PairDenoiser, noise *torch.Tensor, r SampleRun) *torch.Tensor {
	sc := c.schedule()
	sigmas, err := sc.Sigmas(r.Steps)
	if err != nil {
		torch.Failf("consistency_sampler", "%v", err)
	}
	k := s.Child()
	defer k.Close()
	return k.Keep(solver.SampleMultistep(k, d, noise, solver.Multistep{
		Sigmas: sigmas, InitSigma: sc.InitSigma(sigmas[0]), Generator: r.Generator,
		StepNoise: engineTensors(k, "step noise", c.StepNoise), Consistency: c.Consistency,
		Guidance: r.guidance(), Callback: r.step(len(sigmas)),
	}))
}

// TTSSampler is OSV's Time Travel Sampler for the one-step student: each
// of the N steps solves x̂0 = f(x, σ_n), travels back to a lower level
// σ'_n, x' = x̂0 + σ'_n·ε', and solves again (2N denoiser calls; NFE 2 for
// OSV's "1 step + TTS"). The levels come from the (N+2)-level Karras
// schedule k over [SigmaMin, SigmaMax]: steps k_0..k_{N−1}, travels
// k_1..k_N; for N = 1, a step at σ_max and a travel to the second level of
// the two-step sampler's schedule. ε' is the noise the step implies,
// (x − x̂0)/σ_n, unless FreshNoise. Defaults: 1 step, no guidance.
type TTSSampler struct {
	SigmaMin, SigmaMax, Rho float64 // the schedule (0: 0.002, 700, 7)
	// FreshNoise travels with fresh noise instead of the implied noise.
	FreshNoise bool
	// Consistency chooses the consistency function (the zero value: f = D).
	Consistency solver.ConsistencyOptions
	// StepNoise and TravelNoise, when set, are the unit noise of each step
	// but the last and of each travel (with FreshNoise), [1, F, C, h, w] on
	// the pipeline's device; they replace the seeded draws.
	StepNoise, TravelNoise []gotorch.Tensor
}

// Defaults returns 1 step and no guidance.
func (TTSSampler) Defaults() (int, float64, float64) { return 1, 1, 1 }

// Levels are the steps' and the travels' noise levels for n steps.
func (t TTSSampler) Levels(n int) (steps, travel []float64, err error) {
	def := OSVSchedule()
	lo, hi, rho := t.SigmaMin, t.SigmaMax, t.Rho
	if lo == 0 {
		lo = def.SigmaMin
	}
	if hi == 0 {
		hi = def.SigmaMax
	}
	if rho == 0 {
		rho = def.Rho
	}
	if !(lo > 0) || !(hi > lo) || math.IsInf(hi, 0) || !(rho > 0) {
		return nil, nil, fmt.Errorf("tts: schedule σ [%g, %g], ρ %g: want 0 < σ_min < σ_max and ρ > 0", lo, hi, rho)
	}
	if n < 1 {
		return nil, nil, fmt.Errorf("tts: %d steps: want at least 1", n)
	}
	k := solver.KarrasSigmas(n+2, lo, hi, rho)
	for i := range k {
		k[i] = float64(float32(k[i]))
	}
	return k[:n], k[1 : n+1], nil
}

// Sample runs r.Steps steps with their travels.
func (t TTSSampler) Sample(s *torch.Scope, d solver.PairDenoiser, noise *torch.Tensor, r SampleRun) *torch.Tensor {
	steps, travel, err := t.Levels(r.Steps)
	if err != nil {
		torch.Failf("tts_sampler", "%v", err)
	}
	k := s.Child()
	defer k.Close()
	return k.Keep(solver.SampleMultistep(k, d, noise, solver.Multistep{
		Sigmas: steps, Travel: travel, ImpliedNoise: !t.FreshNoise, Generator: r.Generator,
		StepNoise: engineTensors(k, "step noise", t.StepNoise), TravelNoise: engineTensors(k, "travel noise", t.TravelNoise),
		Consistency: t.Consistency, Guidance: r.guidance(), Callback: r.step(len(steps)),
	}))
}

// engineTensors shares gotorch tensors with the engine (nil for none).
func engineTensors(s *torch.Scope, name string, ts []gotorch.Tensor) []*torch.Tensor {
	if len(ts) == 0 {
		return nil
	}
	out := make([]*torch.Tensor, len(ts))
	for i, t := range ts {
		if t.T == nil {
			continue
		}
		e, err := torch.FromGotorch(s, t)
		if err != nil {
			torch.Failf("sampler", "%s %d: %v", name, i, err)
		}
		out[i] = e
	}
	return out
}

// SamplerByName is the built-in sampler a command line names: "euler",
// "consistency" or "tts", with the consistency sampler's schedule "osv"
// (also "") or "animatelcm". Its errors start with the word at fault
// ("sampler …", "schedule …"), ready for a flag's dash in front.
func SamplerByName(name, schedule string) (Sampler, error) {
	switch name {
	case "euler":
		return EulerSampler{}, nil
	case "tts":
		return TTSSampler{}, nil
	case "consistency":
		switch schedule {
		case "osv", "":
			return ConsistencySampler{Schedule: OSVSchedule()}, nil
		case "animatelcm":
			return ConsistencySampler{Schedule: AnimateLCMSchedule()}, nil
		}
		return nil, fmt.Errorf("schedule %q: want osv or animatelcm", schedule)
	}
	return nil, fmt.Errorf("sampler %q: want euler, consistency or tts", name)
}
