package vae

import (
	"errors"
	"github.com/onestepvideo/osv-go/torch"

	"github.com/onestepvideo/osv-go/internal/nn"
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

// Load reads a diffusers VAE folder: config.json and its safetensors
// weights (single file or sharded through an index), in any float dtype on
// disk, cast to the requested dtype on the requested device.
func Load(dir string, opts ...Option) (*Model, error) {
	return nn.LoadFolder("vae", dir, nn.DiffusersWeights, opts, ReadConfig, buildWith)
}

// New builds a model from a config with random weights (PyTorch's default
// initialisation of each layer), for tests and training from scratch.
func New(cfg Config, opts ...Option) (*Model, error) {
	return nn.NewRandom("vae", cfg, opts, Config.Validate, buildWith)
}

// buildWith lays the model out and records where its weights live.
func buildWith(cfg Config, o torch.ModelOptions) (*Model, *torch.Params) {
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	return m, m.params
}

var errClosed = errors.New("vae: model is closed")
