package clip

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/internal/torch"
	"github.com/onestepvideo/osv-go/internal/torch/safetensors"
)

// Option configures Load and New.
type Option func(*options) error

type options struct {
	device torch.Device
	dtype  torch.DType
	seed   uint64
}

// WithDevice places the weights on "cpu", "cuda" or "cuda:N" (default cpu).
func WithDevice(device string) Option {
	return func(o *options) error {
		d, err := torch.ParseDevice(device)
		o.device = d
		return err
	}
}

// WithDType sets the dtype of the weights and the computation: "fp32"
// (default), "fp16" or "bf16".
func WithDType(dtype string) Option {
	return func(o *options) error {
		d, err := torch.ParseDType(dtype)
		if err == nil && !d.IsFloat() {
			err = fmt.Errorf("dtype %s is not a floating-point type", d)
		}
		o.dtype = d
		return err
	}
}

// WithSeed sets the seed of New's random initialisation (default 0).
func WithSeed(seed uint64) Option {
	return func(o *options) error { o.seed = seed; return nil }
}

func applyOptions(opts []Option) (options, error) {
	o := options{device: torch.CPU, dtype: torch.Float32}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return o, fmt.Errorf("clip: %w", err)
		}
	}
	return o, nil
}

// weightFiles are the names transformers gives the weights, in order of
// preference.
var weightFiles = []string{
	"model.safetensors",
	"model.safetensors.index.json",
	"model.fp16.safetensors",
	"model.fp16.safetensors.index.json",
}

// positionIDs is a buffer that checkpoints saved by older transformers
// versions carry; it holds 0, 1, ..., positions−1 and is not a weight.
const positionIDs = "vision_model.embeddings.position_ids"

// Load reads a transformers CLIPVisionModelWithProjection folder (SVD's
// image_encoder): config.json and its safetensors weights (single file or
// sharded through an index), in any float dtype on disk, cast to the
// requested dtype on the requested device.
func Load(dir string, opts ...Option) (*Model, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("clip: %s is not a folder", dir)
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	var path string
	for _, name := range weightFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			path = filepath.Join(dir, name)
			break
		}
	}
	if path == "" {
		return nil, fmt.Errorf("clip: %s holds no weights (looked for %s)", dir, weightFiles[0]+" and its sharded and fp16 forms")
	}
	ck, err := safetensors.OpenCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	defer ck.Close()
	m := build(cfg)
	m.dtype, m.device = o.dtype, o.device
	if _, _, ok := ck.Lookup(positionIDs); ok {
		// Accepted (its shape checked like a weight's) and never used.
		m.params.Add(positionIDs, []int64{1, cfg.NumPositions()}, nn.Init{Kind: nn.InitZeros})
	}
	if err := m.params.Load(ck, "clip: "+path, o.dtype, o.device); err != nil {
		return nil, err
	}
	return m, nil
}

// New builds a model from a config with random weights (uniform in
// ±1/√fan_in, LayerNorms at identity), for benchmarks and tests.
func New(cfg Config, opts ...Option) (*Model, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := build(cfg)
	m.dtype, m.device = o.dtype, o.device
	g, err := torch.NewGenerator(o.seed)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	if err := m.params.InitRandom(g, o.dtype, o.device); err != nil {
		m.params.Free()
		return nil, fmt.Errorf("clip: %w", err)
	}
	return m, nil
}

var errClosed = errors.New("clip: model is closed")
