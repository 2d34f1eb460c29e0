package osv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/onestepvideo/osv-go/solver"
)

// TrainConfig holds every hyperparameter of OSV's two training stages
// (OSV.md sections 3 and 4). Zero values take the defaults given, from the
// paper where it states them; LoadTrainConfig reads the same keys from
// JSON.
type TrainConfig struct {
	Stage int `json:"stage"` // 1: latent GAN pretraining, 2: adversarial consistency distillation (2)

	LoRARank    int64    `json:"lora_rank"`    // LoRA rank r (64)
	LoRAAlpha   float64  `json:"lora_alpha"`   // LoRA α (= r)
	LoRATargets []string `json:"lora_targets"` // module suffixes (lora.DefaultTargets)

	LR           float64 `json:"lr"`            // student learning rate (5e-6)
	DiscLR       float64 `json:"disc_lr"`       // discriminator learning rate (1e-5)
	Beta1        float64 `json:"beta1"`         // Adam β₁ (0.9)
	Beta2        float64 `json:"beta2"`         // Adam β₂ (0.999)
	AdamEps      float64 `json:"adam_eps"`      // Adam ε (1e-8)
	WeightDecay  float64 `json:"weight_decay"`  // decoupled weight decay (0: Adam)
	GradClip     float64 `json:"grad_clip"`     // global gradient-norm clip (1)
	MaxNonFinite int     `json:"max_nonfinite"` // stop after this many non-finite steps in a row (10)

	LambdaAdv float64 `json:"lambda_adv"` // λ_adv, the adversarial weight (0.1)
	HuberC    float64 `json:"huber_c"`    // pseudo-Huber c (0.001)
	// LossWeight names λ(σ), the weight of stage 2's consistency loss at
	// σ_n (stage 1's distance is not weighted): "uniform" 1, "edm"
	// (σ_n² + 1)/σ_n² (EDM's weight with σ_data = 1, as in SVD's
	// preconditioning), "inverse-gap" 1/(σ_n − σ_{n+k}) ("uniform").
	LossWeight string `json:"loss_weight"`

	GridSize      int     `json:"grid_size"`      // N, the training σ grid (100)
	SigmaMin      float64 `json:"sigma_min"`      // grid's σ_min (0.002)
	SigmaMax      float64 `json:"sigma_max"`      // grid's σ_max (700)
	Rho           float64 `json:"rho"`            // grid's ρ (7)
	SolverSteps   int     `json:"solver_steps"`   // k, the teacher's Euler steps per target (5)
	EMADecay      float64 `json:"ema_decay"`      // μ of the target θ⁻ (0.95)
	MinGuidance   float64 `json:"min_guidance"`   // teacher guidance, first frame (1)
	MaxGuidance   float64 `json:"max_guidance"`   // teacher guidance, last frame (3)
	LCMBoundary   bool    `json:"lcm_boundary"`   // LCM boundary scaling in the consistency function (off)
	NoAdversarial bool    `json:"no_adversarial"` // drop the adversarial losses (ablation)
	// DiscReal names stage 2's real sample for the discriminator: "teacher",
	// the teacher's last denoised estimate D_g(x̂_{n+k−1}; σ_{n+k−1}) (OSV.md
	// section 4), or "data", the batch's clean latents x0 ("teacher").
	// Stage 1's real sample is always x0.
	DiscReal string `json:"disc_real"`
	// DiscRealMaxSigma, when positive, makes "teacher" take the teacher's
	// estimate only at levels σ_{n+k−1} ≤ DiscRealMaxSigma and x0 above
	// them: the teacher's sharp low-σ estimates are real, its blurry
	// high-σ posterior means are not (0: the teacher's at every level).
	DiscRealMaxSigma float64 `json:"disc_real_max_sigma"`

	// Foreach runs the two optimisers' updates and the gradient clips over
	// all trainable tensors at once (torch.AdamW.Foreach and
	// ClipGradNormForeach: a few multi-tensor kernels on CUDA instead of
	// about eleven launches per tensor). The updates are the per-tensor
	// ones; the clip's norm may differ in its last bits (off).
	Foreach bool `json:"foreach"`
	// GraphDenoisers replays stage 2's frozen denoisers (the teacher's
	// solver steps and θ⁻'s target) from CUDA graphs, recorded on their
	// first call for each input shape (torch.CaptureGraph): the same
	// kernels, launched once per call instead of one by one. It needs the
	// UNet on a CUDA device (off).
	GraphDenoisers bool `json:"graph_denoisers"`
	// GraphStep records the whole training step (in stage 2 the teacher's
	// solver; the student's and the discriminator's losses, both backward
	// passes, clips and updates, the EMA) once as a CUDA graph and replays
	// it at every step: the grid levels, λ(σ_n), the discriminator's choice
	// of real sample, the batch and the noise are copied into the graph's
	// inputs first, and the optimisers keep their numbers on the device
	// (torch.AdamW.Capturable). Either stage; it needs a CUDA device,
	// no Group and the latent discriminator; GraphDenoisers is then
	// unneeded (off).
	GraphStep bool `json:"graph_step"`

	Seed uint64 `json:"seed"` // seeds the noise, the grid indices, LoRA and the discriminator
}

// Defaults fills zero fields.
func (c TrainConfig) Defaults() TrainConfig {
	f := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	i := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	i(&c.Stage, 2)
	if c.LoRARank == 0 {
		c.LoRARank = 64
	}
	f(&c.LoRAAlpha, float64(c.LoRARank))
	f(&c.LR, 5e-6)
	f(&c.DiscLR, 1e-5)
	f(&c.Beta1, 0.9)
	f(&c.Beta2, 0.999)
	f(&c.AdamEps, 1e-8)
	f(&c.GradClip, 1)
	i(&c.MaxNonFinite, 10)
	f(&c.LambdaAdv, 0.1)
	f(&c.HuberC, 0.001)
	i(&c.GridSize, 100)
	f(&c.SigmaMin, 0.002)
	f(&c.SigmaMax, 700)
	f(&c.Rho, 7)
	i(&c.SolverSteps, 5)
	f(&c.EMADecay, 0.95)
	f(&c.MinGuidance, 1)
	f(&c.MaxGuidance, 3)
	return c
}

// Validate checks a config with its defaults filled.
func (c TrainConfig) Validate() error {
	switch {
	case c.Stage != 1 && c.Stage != 2:
		return fmt.Errorf("train config: stage %d: want 1 or 2", c.Stage)
	case c.LoRARank < 1:
		return fmt.Errorf("train config: lora_rank %d: want at least 1", c.LoRARank)
	case c.LR <= 0 || c.DiscLR <= 0:
		return fmt.Errorf("train config: lr %g and disc_lr %g must be positive", c.LR, c.DiscLR)
	case c.GridSize < 2:
		return fmt.Errorf("train config: grid_size %d: want at least 2", c.GridSize)
	case c.Stage == 2 && (c.SolverSteps < 1 || c.SolverSteps >= c.GridSize):
		return fmt.Errorf("train config: solver_steps %d: want 1 to grid_size − 1 (%d)", c.SolverSteps, c.GridSize-1)
	case !(c.SigmaMin > 0) || !(c.SigmaMax > c.SigmaMin):
		return fmt.Errorf("train config: sigma range [%g, %g] is empty", c.SigmaMin, c.SigmaMax)
	case c.EMADecay < 0 || c.EMADecay >= 1:
		return fmt.Errorf("train config: ema_decay %g: want [0, 1)", c.EMADecay)
	case c.LambdaAdv < 0 || c.HuberC <= 0:
		return fmt.Errorf("train config: lambda_adv %g must be ≥ 0 and huber_c %g > 0", c.LambdaAdv, c.HuberC)
	case !slices.Contains([]string{"", "uniform", "edm", "inverse-gap"}, c.LossWeight):
		return fmt.Errorf("train config: loss_weight %q: want \"uniform\", \"edm\" or \"inverse-gap\"", c.LossWeight)
	case !slices.Contains([]string{"", "teacher", "data"}, c.DiscReal):
		return fmt.Errorf("train config: disc_real %q: want \"teacher\" or \"data\"", c.DiscReal)
	case !(c.DiscRealMaxSigma >= 0):
		return fmt.Errorf("train config: disc_real_max_sigma %g: want ≥ 0", c.DiscRealMaxSigma)
	case c.DiscRealMaxSigma > 0 && c.DiscReal == "data":
		return fmt.Errorf("train config: disc_real_max_sigma %g would be ignored: disc_real \"data\" takes x0 at every level", c.DiscRealMaxSigma)
	}
	return nil
}

// lossWeight is stage 2's λ for the levels σ_n … σ_{n+k} (nil for 1).
func (c TrainConfig) lossWeight(sigmas []float64) func(sigma float64) float64 {
	switch c.LossWeight {
	case "edm":
		return func(sigma float64) float64 { return (sigma*sigma + 1) / (sigma * sigma) }
	case "inverse-gap":
		next := sigmas[len(sigmas)-1]
		return func(sigma float64) float64 { return 1 / (sigma - next) }
	}
	return nil
}

// realIsData reports whether stage 2's discriminator takes x0 as its real
// sample when the teacher's last estimate is at level sigma (σ_{n+k−1}).
func (c TrainConfig) realIsData(sigma float64) bool {
	return c.DiscReal == "data" || c.DiscRealMaxSigma > 0 && sigma > c.DiscRealMaxSigma
}

// grid is the training σ grid (decreasing).
func (c TrainConfig) grid() []float64 {
	return solver.TrainingSigmas(c.GridSize, c.SigmaMin, c.SigmaMax, c.Rho)
}

// LoadTrainConfig reads a JSON config file; absent keys take the defaults.
func LoadTrainConfig(path string) (TrainConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return TrainConfig{}, fmt.Errorf("train config: %w", err)
	}
	var c TrainConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return TrainConfig{}, fmt.Errorf("train config: %s: %w", path, err)
	}
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return TrainConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
