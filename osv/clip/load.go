package clip

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

// positionIDs is a buffer that checkpoints saved by older transformers
// versions carry; it holds 0, 1, ..., positions−1 and is not a weight.
const positionIDs = "vision_model.embeddings.position_ids"

// Load reads a transformers CLIPVisionModelWithProjection folder (SVD's
// image_encoder): config.json and its safetensors weights (single file or
// sharded through an index), in any float dtype on disk, cast to the
// requested dtype on the requested device.
func Load(dir string, opts ...Option) (*Model, error) {
	o, err := nn.NewOptions("clip", opts)
	if err != nil {
		return nil, err
	}
	if err := nn.CheckFolder("clip", dir); err != nil {
		return nil, err
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, path, err := nn.OpenWeights("clip", dir, nn.TransformersWeights)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	if _, _, ok := ck.Lookup(positionIDs); ok {
		// Accepted (its shape checked like a weight's) and never used.
		m.params.Add(positionIDs, []int64{1, cfg.NumPositions()}, nn.Init{Kind: nn.InitZeros})
	}
	if err := m.params.Load(ck, "clip: "+path, o.DType, o.Device); err != nil {
		return nil, err
	}
	return m, nil
}

// New builds a model from a config with random weights (uniform in
// ±1/√fan_in, LayerNorms at identity), for benchmarks and tests.
func New(cfg Config, opts ...Option) (*Model, error) {
	o, err := nn.NewOptions("clip", opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := build(cfg)
	m.dtype, m.device = o.DType, o.Device
	if err := m.params.Init("clip", o); err != nil {
		return nil, err
	}
	return m, nil
}

var errClosed = errors.New("clip: model is closed")
