package clip

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

// Load reads a transformers CLIPVisionModelWithProjection folder (SVD's
// image_encoder): config.json and its safetensors weights (single file or
// sharded through an index), in any float dtype on disk, cast to the
// requested dtype on the requested device.
func Load(dir string, opts ...Option) (*Model, error) {
	return nn.LoadFolder("clip", dir, nn.TransformersWeights, opts, ReadConfig, buildWith)
}

// New builds a model from a config with random weights (uniform in
// ±1/√fan_in, LayerNorms at identity), for benchmarks and tests.
func New(cfg Config, opts ...Option) (*Model, error) {
	return nn.NewRandom("clip", cfg, opts, Config.Validate, buildWith)
}

// buildWith lays the model out and records where its weights live.
func buildWith(cfg Config, o torch.ModelOptions) (*Model, *torch.Params) {
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	// Checkpoints of older transformers versions carry the position_ids
	// buffer (0, 1, ..., positions−1): accepted, never used.
	m.params.Ignore(positionIDs, []int64{1, cfg.NumPositions()})
	return m, m.params
}

// positionIDs is the buffer older transformers versions saved with the
// weights.
const positionIDs = "vision_model.embeddings.position_ids"

var errClosed = errors.New("clip: model is closed")
