package discriminator

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/onestepvideo/osv-go/internal/torch"
	"github.com/onestepvideo/osv-go/internal/torch/safetensors"
)

// Option configures LoadBackbone and NewBackbone.
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

// WithDType sets the dtype of the backbone's weights and computation:
// "fp32" (default), "fp16" or "bf16". The discriminator's trainable parts
// stay in float32 whatever the backbone's dtype.
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

// WithSeed sets the seed of NewBackbone's random weights (default 0).
func WithSeed(seed uint64) Option {
	return func(o *options) error { o.seed = seed; return nil }
}

func applyOptions(opts []Option) (options, error) {
	o := options{device: torch.CPU, dtype: torch.Float32}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return o, fmt.Errorf("dinov2: %w", err)
		}
	}
	return o, nil
}

// backboneWeightFiles are the names transformers gives the weights, in
// order of preference.
var backboneWeightFiles = []string{"model.safetensors", "model.safetensors.index.json"}

// LoadBackbone reads a transformers Dinov2Model folder (config.json and
// model.safetensors, single or sharded, any float dtype on disk), cast to
// the requested dtype on the requested device. Loading is strict: missing,
// unexpected and mis-shaped keys are reported together.
func LoadBackbone(dir string, opts ...Option) (*Backbone, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("dinov2: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("dinov2: %s is not a folder", dir)
	}
	cfg, err := ReadBackboneConfig(dir)
	if err != nil {
		return nil, err
	}
	var path string
	for _, name := range backboneWeightFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			path = filepath.Join(dir, name)
			break
		}
	}
	if path == "" {
		return nil, fmt.Errorf("dinov2: %s holds no weights (looked for %s)", dir, backboneWeightFiles[0]+" and its sharded form")
	}
	ck, err := safetensors.OpenCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("dinov2: %w", err)
	}
	defer ck.Close()
	b := buildBackbone(cfg)
	b.dtype, b.device = o.dtype, o.device
	if err := b.params.Load(ck, "dinov2: "+path, o.dtype, o.device); err != nil {
		return nil, err
	}
	return b, nil
}

// NewBackbone builds a backbone with random weights (PyTorch's default
// initialisation of each layer; embeddings zero, layer scale at
// layerscale_value), for tests and benchmarks.
func NewBackbone(cfg BackboneConfig, opts ...Option) (*Backbone, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := buildBackbone(cfg)
	b.dtype, b.device = o.dtype, o.device
	g, err := torch.NewGenerator(o.seed)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	if err := b.params.InitRandom(g, o.dtype, o.device); err != nil {
		b.params.Free()
		return nil, fmt.Errorf("dinov2: %w", err)
	}
	return b, nil
}
