package discriminator

import (
	"github.com/onestepvideo/osv-go/internal/nn"
)

// Option configures Load and New.
type Option = nn.Option

// WithDevice places the weights on "cpu" (default), "cuda" or "cuda:N".
func WithDevice(device string) Option { return nn.WithDevice(device) }

// WithDType sets the dtype of the backbone's weights and computation:
// "fp32" (default), "fp16" or "bf16". The discriminator's trainable parts
// stay in float32 whatever the backbone's dtype.
func WithDType(dtype string) Option { return nn.WithDType(dtype) }

// WithSeed sets the seed of New's random initialisation (default 0).
func WithSeed(seed uint64) Option { return nn.WithSeed(seed) }

// LoadBackbone reads a transformers Dinov2Model folder (config.json and
// model.safetensors, single or sharded, any float dtype on disk), cast to
// the requested dtype on the requested device. Loading is strict: missing,
// unexpected and mis-shaped keys are reported together.
func LoadBackbone(dir string, opts ...Option) (*Backbone, error) {
	o, err := nn.NewOptions("dinov2", opts)
	if err != nil {
		return nil, err
	}
	if err := nn.CheckFolder("dinov2", dir); err != nil {
		return nil, err
	}
	cfg, err := ReadBackboneConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, path, err := nn.OpenWeights("dinov2", dir, nn.TransformersWeights)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	b := buildBackbone(cfg)
	b.dtype, b.device = o.DType, o.Device
	if err := b.params.Load(ck, "dinov2: "+path, o.DType, o.Device); err != nil {
		return nil, err
	}
	return b, nil
}

// NewBackbone builds a backbone with random weights (PyTorch's default
// initialisation of each layer; embeddings zero, layer scale at
// layerscale_value), for tests and benchmarks.
func NewBackbone(cfg BackboneConfig, opts ...Option) (*Backbone, error) {
	o, err := nn.NewOptions("dinov2", opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := buildBackbone(cfg)
	b.dtype, b.device = o.DType, o.Device
	if err := b.params.Init("dinov2", o); err != nil {
		return nil, err
	}
	return b, nil
}
