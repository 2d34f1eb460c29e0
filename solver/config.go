package solver

import (
	"encoding/json"
	"fmt"
	"os"
)

// SchedulerConfig is diffusers' EulerDiscreteScheduler scheduler_config.json.
// A key missing from the file takes diffusers' default for it.
type SchedulerConfig struct {
	ClassName           string    `json:"_class_name"`
	NumTrainTimesteps   int       `json:"num_train_timesteps"`
	BetaStart           float64   `json:"beta_start"`
	BetaEnd             float64   `json:"beta_end"`
	BetaSchedule        string    `json:"beta_schedule"`
	TrainedBetas        []float64 `json:"trained_betas"`
	PredictionType      string    `json:"prediction_type"`
	InterpolationType   string    `json:"interpolation_type"`
	UseKarrasSigmas     bool      `json:"use_karras_sigmas"`
	UseExponential      bool      `json:"use_exponential_sigmas"`
	UseBetaSigmas       bool      `json:"use_beta_sigmas"`
	SigmaMin            *float64  `json:"sigma_min"` // nil: the schedule's own smallest σ
	SigmaMax            *float64  `json:"sigma_max"` // nil: the schedule's own largest σ
	TimestepSpacing     string    `json:"timestep_spacing"`
	TimestepType        string    `json:"timestep_type"`
	StepsOffset         int       `json:"steps_offset"`
	RescaleBetasZeroSNR bool      `json:"rescale_betas_zero_snr"`
	FinalSigmasType     string    `json:"final_sigmas_type"`
}

// Accepted values of the string keys.
const (
	eulerClass = "EulerDiscreteScheduler"

	BetasLinear       = "linear"
	BetasScaledLinear = "scaled_linear"
	BetasSquaredCos   = "squaredcos_cap_v2"

	PredictEpsilon        = "epsilon"
	PredictV              = "v_prediction"
	PredictSample         = "sample"
	predictOriginalSample = "original_sample" // diffusers' older name for "sample"

	SpacingLinspace = "linspace"
	SpacingLeading  = "leading"
	SpacingTrailing = "trailing"

	TimestepsDiscrete   = "discrete"
	TimestepsContinuous = "continuous"

	FinalSigmaZero = "zero"
	FinalSigmaMin  = "sigma_min"
)

// diffusersDefaults is what EulerDiscreteScheduler takes for a key that the
// file leaves out.
func diffusersDefaults() SchedulerConfig {
	return SchedulerConfig{
		NumTrainTimesteps: 1000,
		BetaStart:         0.0001,
		BetaEnd:           0.02,
		BetaSchedule:      BetasLinear,
		PredictionType:    PredictEpsilon,
		InterpolationType: "linear",
		TimestepSpacing:   SpacingLinspace,
		TimestepType:      TimestepsDiscrete,
		FinalSigmasType:   FinalSigmaZero,
	}
}

// DefaultSchedulerConfig is SVD's scheduler_config.json
// (stable-video-diffusion-img2vid-xt): scaled-linear betas, v-prediction,
// Karras σ's between 0.002 and 700, continuous timesteps ¼·ln σ.
func DefaultSchedulerConfig() SchedulerConfig {
	c := diffusersDefaults()
	c.ClassName = eulerClass
	c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, BetasScaledLinear
	c.PredictionType = PredictV
	c.UseKarrasSigmas = true
	lo, hi := 0.002, 700.0
	c.SigmaMin, c.SigmaMax = &lo, &hi
	c.TimestepSpacing = SpacingLeading
	c.TimestepType = TimestepsContinuous
	c.StepsOffset = 1
	return c
}

// Validate rejects values this package does not reproduce, naming the key.
func (c SchedulerConfig) Validate() error {
	bad := func(key string, v any, want string) error {
		return fmt.Errorf("scheduler config: %s = %v is not supported (want %s)", key, v, want)
	}
	if c.ClassName != "" && c.ClassName != eulerClass {
		return bad("_class_name", fmt.Sprintf("%q", c.ClassName), eulerClass)
	}
	if c.NumTrainTimesteps < 2 {
		return bad("num_train_timesteps", c.NumTrainTimesteps, "at least 2")
	}
	if c.TrainedBetas != nil {
		if len(c.TrainedBetas) != c.NumTrainTimesteps {
			return fmt.Errorf("scheduler config: trained_betas has %d values for num_train_timesteps %d",
				len(c.TrainedBetas), c.NumTrainTimesteps)
		}
	} else {
		switch c.BetaSchedule {
		case BetasLinear, BetasScaledLinear, BetasSquaredCos:
		default:
			return bad("beta_schedule", fmt.Sprintf("%q", c.BetaSchedule), "linear, scaled_linear or squaredcos_cap_v2")
		}
	}
	if c.RescaleBetasZeroSNR {
		return bad("rescale_betas_zero_snr", true, "false")
	}
	switch c.PredictionType {
	case PredictEpsilon, PredictV, PredictSample, predictOriginalSample:
	default:
		return bad("prediction_type", fmt.Sprintf("%q", c.PredictionType), "epsilon, v_prediction or sample")
	}
	if c.InterpolationType != "linear" {
		return bad("interpolation_type", fmt.Sprintf("%q", c.InterpolationType), "linear")
	}
	if c.UseBetaSigmas {
		return bad("use_beta_sigmas", true, "false")
	}
	if c.UseKarrasSigmas && c.UseExponential {
		return fmt.Errorf("scheduler config: use_karras_sigmas and use_exponential_sigmas are both set")
	}
	for key, v := range map[string]*float64{"sigma_min": c.SigmaMin, "sigma_max": c.SigmaMax} {
		if v != nil && !(*v > 0) {
			return bad(key, *v, "a positive number or null")
		}
	}
	switch c.TimestepSpacing {
	case SpacingLinspace, SpacingLeading, SpacingTrailing:
	default:
		return bad("timestep_spacing", fmt.Sprintf("%q", c.TimestepSpacing), "linspace, leading or trailing")
	}
	switch c.TimestepType {
	case TimestepsDiscrete, TimestepsContinuous:
	default:
		return bad("timestep_type", fmt.Sprintf("%q", c.TimestepType), "discrete or continuous")
	}
	switch c.FinalSigmasType {
	case FinalSigmaZero, FinalSigmaMin:
	default:
		return bad("final_sigmas_type", fmt.Sprintf("%q", c.FinalSigmasType), "zero or sigma_min")
	}
	return nil
}

// LoadSchedulerConfig reads and validates a scheduler_config.json. Keys
// the file leaves out take diffusers' defaults; keys this scheduler does
// not know are ignored, as diffusers ignores them.
func LoadSchedulerConfig(path string) (SchedulerConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return SchedulerConfig{}, fmt.Errorf("scheduler: %w", err)
	}
	c := diffusersDefaults()
	if err := json.Unmarshal(b, &c); err != nil {
		return SchedulerConfig{}, fmt.Errorf("scheduler: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return SchedulerConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
