package unet

import (
	"errors"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// Option configures Load and New.
type Option = torch.ModelOption

// WithDevice places the weights on "cpu" (default), "cuda" or "cuda:N".
func WithDevice(device string) Option { return torch.WithDevice(device) }

// WithDType sets the dtype of the weights and the computation: "fp32"
// (default), "fp16" or "bf16".
func WithDType(dtype string) Option { return torch.WithDType(dtype) }

// WithSeed sets the seed of New's random initialisation (default 0).
func WithSeed(seed uint64) Option { return torch.WithSeed(seed) }

// Load reads a diffusers UNet folder: config.json and its safetensors
// weights (single file or sharded through an index), in any float dtype on
// disk, cast to the requested dtype on the requested device.
func Load(dir string, opts ...Option) (*Model, error) {
	return nn.LoadFolder("unet", dir, nn.DiffusersWeights, opts, ReadConfig, buildWith)
}

// LoadStateDict reads a UNet saved as one bare state_dict: a safetensors
// file with diffusers' keys and no config beside it (the form some
// distilled students are published in), laid out by cfg (typically the
// base pipeline's unet/config.json through ReadConfig). Loading is strict:
// missing, unexpected and mis-shaped keys are all reported in one error
// naming the file. A path ending in ".json" is a sharded checkpoint's
// index.
func LoadStateDict(cfg Config, file string, opts ...Option) (*Model, error) {
	return nn.LoadStateDict("unet", file, cfg, opts, Config.Validate, buildWith)
}

// New builds a model from a config with random weights (PyTorch's default
// initialisation of each layer), for benchmarks and training from scratch.
func New(cfg Config, opts ...Option) (*Model, error) {
	return nn.NewRandom("unet", cfg, opts, Config.Validate, buildWith)
}

// buildWith lays the model out and records where its weights live.
func buildWith(cfg Config, o torch.ModelOptions) (*Model, *torch.Params) {
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	return m, m.params
}

var errClosed = errors.New("unet: model is closed")
