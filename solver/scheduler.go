package solver

import (
	"fmt"
	"math"
	"slices"
)

// Scheduler is diffusers' EulerDiscreteScheduler (Karras et al. 2022,
// Algorithm 2 without churn), computed as diffusers computes it: the
// training σ's from the betas in float32, the inference σ's in float64
// then stored in float32, the step in float32.
//
// Unlike diffusers, it keeps no step counter: ScaleModelInput and Step take
// the step index i (0 for the noisiest σ) explicitly. A new Scheduler
// holds the training schedule; SetTimesteps sets an inference one.
type Scheduler struct {
	cfg         SchedulerConfig
	trainSigmas []float32 // σ of training timesteps 0..T−1 (ascending)
	sigmas      []float32 // σ_0 > ... > σ_{n−1}, then the final σ
	timesteps   []float32 // the model's timestep input at σ_0..σ_{n−1}
}

// NewScheduler makes a scheduler from a config; it holds the training
// schedule until SetTimesteps is called.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cloneConfig(cfg)
	s := &Scheduler{cfg: cfg, trainSigmas: trainingSigmas(trainingBetas(cfg))}
	T := cfg.NumTrainTimesteps
	s.sigmas = make([]float32, T+1)
	for i := range T {
		s.sigmas[i] = s.trainSigmas[T-1-i]
	}
	if s.continuous() {
		s.timesteps = s.logTimesteps()
	} else {
		up := linspace64(0, float64(T-1), T)
		s.timesteps = make([]float32, T)
		for i := range s.timesteps {
			s.timesteps[i] = float32(up[T-1-i])
		}
	}
	return s, nil
}

// LoadScheduler reads a scheduler_config.json and makes its scheduler.
func LoadScheduler(path string) (*Scheduler, error) {
	cfg, err := LoadSchedulerConfig(path)
	if err != nil {
		return nil, err
	}
	return NewScheduler(cfg)
}

// Config is the scheduler's config (a copy).
func (s *Scheduler) Config() SchedulerConfig {
	if s == nil {
		return SchedulerConfig{}
	}
	return cloneConfig(s.cfg)
}

// cloneConfig copies c's slice and pointers.
func cloneConfig(c SchedulerConfig) SchedulerConfig {
	c.TrainedBetas = slices.Clone(c.TrainedBetas)
	if c.SigmaMin != nil {
		v := *c.SigmaMin
		c.SigmaMin = &v
	}
	if c.SigmaMax != nil {
		v := *c.SigmaMax
		c.SigmaMax = &v
	}
	return c
}

// continuous reports whether timesteps are ¼·ln σ (diffusers does so only
// for continuous timesteps with v-prediction).
func (s *Scheduler) continuous() bool {
	return s.cfg.TimestepType == TimestepsContinuous && s.cfg.PredictionType == PredictV
}

// logTimesteps is ¼·ln σ in float32 for every σ but the final one.
func (s *Scheduler) logTimesteps() []float32 {
	out := make([]float32, len(s.sigmas)-1)
	for i := range out {
		out[i] = 0.25 * log32(s.sigmas[i])
	}
	return out
}

// SetTimesteps sets a schedule of n inference steps: n σ's from the
// noisiest, then the final σ (0 for final_sigmas_type "zero"), and the
// model's timestep at each of the n.
func (s *Scheduler) SetTimesteps(n int) error {
	if s == nil {
		return errNilScheduler
	}
	if n < 1 {
		return fmt.Errorf("scheduler: %d inference steps (want at least 1)", n)
	}
	c := s.cfg
	ts := spacedTimesteps(c, n)
	sig := interp(ts, s.trainSigmas)
	var tsFine []float64
	if c.UseKarrasSigmas || c.UseExponential {
		lo, hi := sig[len(sig)-1], sig[0]
		if c.SigmaMin != nil {
			lo = *c.SigmaMin
		}
		if c.SigmaMax != nil {
			hi = *c.SigmaMax
		}
		if c.UseKarrasSigmas {
			sig = KarrasSigmas(n, lo, hi, 7)
		} else {
			sig = exponentialSigmas(n, lo, hi)
		}
		logSigmas := make([]float32, len(s.trainSigmas))
		for i, v := range s.trainSigmas {
			logSigmas[i] = log32(v)
		}
		tsFine = make([]float64, len(sig))
		for i, v := range sig {
			tsFine[i] = sigmaToT(v, logSigmas)
		}
	}
	last := 0.0
	if c.FinalSigmasType == FinalSigmaMin {
		last = float64(s.trainSigmas[0])
	}
	s.sigmas = make([]float32, len(sig)+1)
	for i, v := range sig {
		s.sigmas[i] = float32(v)
	}
	s.sigmas[len(sig)] = float32(last)
	switch {
	case s.continuous():
		s.timesteps = s.logTimesteps()
	case tsFine != nil:
		s.timesteps = make([]float32, len(tsFine))
		for i, v := range tsFine {
			s.timesteps[i] = float32(v)
		}
	default:
		s.timesteps = ts
	}
	return nil
}

// Sigmas is the schedule's σ's: one per step, then the final σ (a copy).
func (s *Scheduler) Sigmas() []float32 {
	if s == nil {
		return nil
	}
	return slices.Clone(s.sigmas)
}

// Timesteps is the model's timestep input at each step (a copy); for
// SVD's config, ¼·ln σ.
func (s *Scheduler) Timesteps() []float32 {
	if s == nil {
		return nil
	}
	return slices.Clone(s.timesteps)
}

// NumSteps is the number of steps of the current schedule.
func (s *Scheduler) NumSteps() int {
	if s == nil {
		return 0
	}
	return len(s.timesteps)
}

// InitNoiseSigma is the standard deviation of the initial noise: the
// largest σ for "linspace" and "trailing" spacing, otherwise √(σ_max²+1)
// (diffusers' rule, in float32; 700.00073 for SVD). A nil scheduler gives 0.
func (s *Scheduler) InitNoiseSigma() float64 {
	if s == nil {
		return 0
	}
	m := slices.Max(s.sigmas)
	if s.cfg.TimestepSpacing == SpacingLinspace || s.cfg.TimestepSpacing == SpacingTrailing {
		return float64(m)
	}
	return float64(sqrt32(float32(m*m) + 1))
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
