package torch

import "fmt"

// ModelOptions are where a model's weights live, their dtype (also the
// computation's), and the seed of a random initialisation. Every model
// package's Load and New take them as ModelOption values (unet.WithDevice,
// vae.WithDType, ... are these).
type ModelOptions struct {
	Device Device // where the weights live (default CPU)
	DType  DType  // the weights' and the computation's dtype (default Float32)
	Seed   uint64 // the seed of a random initialisation (default 0)
}

// ModelOption sets one of the ModelOptions; it returns an error for a value
// it cannot accept. A library may write its own (a func literal).
type ModelOption func(*ModelOptions) error

// WithDevice places the weights on "cpu" (default), "cuda" or "cuda:N"; a
// spelling ParseDevice does not read, or a device this build or machine
// lacks, makes the Load or New that gets it fail.
func WithDevice(device string) ModelOption {
	return func(o *ModelOptions) error {
		d, err := ParseDevice(device)
		o.Device = d
		return err
	}
}

// WithDType sets the dtype of the weights and of the computation: "fp32"
// (default), "fp16", "bf16" or "fp64", in any spelling ParseDType reads; a
// name it does not read, or an integer dtype, makes the Load or New that
// gets it fail.
func WithDType(dtype string) ModelOption {
	return func(o *ModelOptions) error {
		d, err := ParseDType(dtype)
		if err == nil && !d.IsFloat() {
			err = fmt.Errorf("dtype %s is not a floating-point type", d)
		}
		o.DType = d
		return err
	}
}

// WithSeed sets the seed of a random initialisation (default 0).
func WithSeed(seed uint64) ModelOption {
	return func(o *ModelOptions) error { o.Seed = seed; return nil }
}

// NewModelOptions applies opts, in order, to the defaults (CPU, float32,
// seed 0), skipping nil ones; the first option's error is returned,
// prefixed with what (the model's name).
func NewModelOptions(what string, opts []ModelOption) (ModelOptions, error) {
	o := ModelOptions{Device: CPU, DType: Float32}
	for _, f := range opts {
		if f == nil {
			continue
		}
		if err := f(&o); err != nil {
			return o, fmt.Errorf("%s: %w", what, err)
		}
	}
	return o, nil
}

// Init draws every parameter at random from o's seed, as o's dtype on o's
// device (see InitRandom); errors are prefixed with what, and on error
// nothing stays allocated.
func (ps *Params) Init(what string, o ModelOptions) error {
	g, err := NewGenerator(o.Seed)
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
