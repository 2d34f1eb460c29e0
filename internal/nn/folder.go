package nn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onestepvideo/osv-go/internal/torch"
	"github.com/onestepvideo/osv-go/internal/torch/safetensors"
)

// Options are where a model's weights live, their dtype (also the
// computation's), and the seed of a random initialisation. Every model
// package's Load and New take them through its Option functions.
type Options struct {
	Device torch.Device
	DType  torch.DType
	Seed   uint64
}

// Option sets one of the Options.
type Option func(*Options) error

// WithDevice places the weights on "cpu" (default), "cuda" or "cuda:N".
func WithDevice(device string) Option {
	return func(o *Options) error {
		d, err := torch.ParseDevice(device)
		o.Device = d
		return err
	}
}

// WithDType sets the dtype of the weights and of the computation: "fp32"
// (default), "fp16" or "bf16".
func WithDType(dtype string) Option {
	return func(o *Options) error {
		d, err := torch.ParseDType(dtype)
		if err == nil && !d.IsFloat() {
			err = fmt.Errorf("dtype %s is not a floating-point type", d)
		}
		o.DType = d
		return err
	}
}

// WithSeed sets the seed of a random initialisation (default 0).
func WithSeed(seed uint64) Option {
	return func(o *Options) error { o.Seed = seed; return nil }
}

// NewOptions applies opts to the defaults (CPU, float32, seed 0); errors
// are prefixed with what (the model's name).
func NewOptions(what string, opts []Option) (Options, error) {
	o := Options{Device: torch.CPU, DType: torch.Float32}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return o, fmt.Errorf("%s: %w", what, err)
		}
	}
	return o, nil
}

// Weight file names, in order of preference: a single file, then a sharded
// checkpoint's index, then the fp16 variants.
var (
	DiffusersWeights = []string{
		"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
		"diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.safetensors.index.json",
	}
	TransformersWeights = []string{
		"model.safetensors", "model.safetensors.index.json",
		"model.fp16.safetensors", "model.fp16.safetensors.index.json",
	}
)

// CheckFolder reports a clear error unless dir is a folder.
func CheckFolder(what, dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", what, dir)
	}
	return nil
}

// OpenWeights opens the first of names present in dir (single file or
// sharded through its index) and returns it with its path.
func OpenWeights(what, dir string, names []string) (*safetensors.Checkpoint, string, error) {
	for _, name := range names {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		ck, err := safetensors.OpenCheckpoint(path)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		return ck, path, nil
	}
	return nil, "", fmt.Errorf("%s: %s holds no weights (looked for %s)", what, dir, strings.Join(names, ", "))
}

// Init draws every parameter at random from o's seed, as o's dtype on o's
// device; on error nothing stays allocated.
func (ps *Params) Init(what string, o Options) error {
	g, err := torch.NewGenerator(o.Seed)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer g.Close()
	if err := ps.InitRandom(g, o.DType, o.Device); err != nil {
		ps.Free()
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// LoadFolder is a model package's Load: options, the folder, its config
// (read), the weights (files, in order of preference), the model built by
// build (which registers its parameters and records o), and a strict load.
func LoadFolder[C, M any](what, dir string, files []string, opts []Option,
	read func(dir string) (C, error), build func(C, Options) (M, *Params)) (M, error) {
	var zero M
	o, err := NewOptions(what, opts)
	if err != nil {
		return zero, err
	}
	if err := CheckFolder(what, dir); err != nil {
		return zero, err
	}
	cfg, err := read(dir)
	if err != nil {
		return zero, err
	}
	ck, path, err := OpenWeights(what, dir, files)
	if err != nil {
		return zero, err
	}
	defer ck.Close()
	m, ps := build(cfg, o)
	if err := ps.Load(ck, what+": "+path, o.DType, o.Device); err != nil {
		return zero, err
	}
	return m, nil
}

// NewRandom is a model package's New: options, the config validated, the
// model built by build and its parameters drawn at random from o's seed.
func NewRandom[C, M any](what string, cfg C, opts []Option, validate func(C) error, build func(C, Options) (M, *Params)) (M, error) {
	var zero M
	o, err := NewOptions(what, opts)
	if err != nil {
		return zero, err
	}
	if err := validate(cfg); err != nil {
		return zero, err
	}
	m, ps := build(cfg, o)
	if err := ps.Init(what, o); err != nil {
		return zero, err
	}
	return m, nil
}
