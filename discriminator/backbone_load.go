package discriminator

import (
	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// Option configures Load and New.
type Option = torch.ModelOption

// WithDevice places the weights on "cpu" (default), "cuda" or "cuda:N".
func WithDevice(device string) Option { return torch.WithDevice(device) }

// WithDType sets the dtype of the backbone's weights and computation:
// "fp32" (default), "fp16" or "bf16". The discriminator's trainable parts
// stay in float32 whatever the backbone's dtype.
func WithDType(dtype string) Option { return torch.WithDType(dtype) }

// WithSeed sets the seed of New's random initialisation (default 0).
func WithSeed(seed uint64) Option { return torch.WithSeed(seed) }

// LoadBackbone reads a transformers Dinov2Model folder (config.json and
// model.safetensors, single or sharded, any float dtype on disk), cast to
// the requested dtype on the requested device. Loading is strict: missing,
// unexpected and mis-shaped keys are reported together.
func LoadBackbone(dir string, opts ...Option) (*Backbone, error) {
	return nn.LoadFolder("dinov2", dir, nn.TransformersWeights, opts, ReadBackboneConfig, buildBackboneWith)
}

// NewBackbone builds a backbone with random weights (PyTorch's default
// initialisation of each layer; embeddings zero, layer scale at
// layerscale_value), for tests and benchmarks.
func NewBackbone(cfg BackboneConfig, opts ...Option) (*Backbone, error) {
	return nn.NewRandom("dinov2", cfg, opts, BackboneConfig.Validate, buildBackboneWith)
}

// buildBackboneWith lays the backbone out and records where its weights live.
func buildBackboneWith(cfg BackboneConfig, o torch.ModelOptions) (*Backbone, *torch.Params) {
	b := buildBackbone(cfg)
	b.dtype, b.device = o.DType, o.Device
	return b, b.params
}
