package unet

import (
	"errors"

	"github.com/onestepvideo/osv-go/internal/nn"
)

// Option configures Load and New.
type Option = nn.Option

// WithDevice places the weights on "cpu" (default), "cuda" or "cuda:N".
func WithDevice(device string) Option { return nn.WithDevice(device) }

// WithDType sets the dtype of the weights and the computation: "fp32"
// (default), "fp16" or "bf16".
func WithDType(dtype string) Option { return nn.WithDType(dtype) }

// WithSeed sets the seed of New's random initialisation (default 0).
func WithSeed(seed uint64) Option { return nn.WithSeed(seed) }

// Load reads a diffusers UNet folder: config.json and its safetensors
// weights (single file or sharded through an index), in any float dtype on
// disk, cast to the requested dtype on the requested device.
func Load(dir string, opts ...Option) (*Model, error) {
	o, err := nn.NewOptions("unet", opts)
	if err != nil {
		return nil, err
	}
	if err := nn.CheckFolder("unet", dir); err != nil {
		return nil, err
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, path, err := nn.OpenWeights("unet", dir, nn.DiffusersWeights)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	if err := m.params.Load(ck, "unet: "+path, o.DType, o.Device); err != nil {
		return nil, err
	}
	return m, nil
}

// New builds a model from a config with random weights (PyTorch's default
// initialisation of each layer), for benchmarks and training from scratch.
func New(cfg Config, opts ...Option) (*Model, error) {
	o, err := nn.NewOptions("unet", opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	if err := m.params.Init("unet", o); err != nil {
		return nil, err
	}
	return m, nil
}

var errClosed = errors.New("unet: model is closed")
