package torch

import (
	"fmt"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Generator is a seeded source of random numbers. Numbers are drawn in
// float32 on the generator's device and then cast and moved: on the CPU for
// NewGenerator, so that a seed gives the same values on every device; on a
// device of its own for NewDeviceGenerator. Close releases it; after Close
// its methods return an error. It is not safe for concurrent use.
type Generator struct{ g cb.Generator }

// NewGenerator makes a generator from a seed (libtorch's CPU generator):
// the same seed gives the same numbers in every run.
func NewGenerator(seed uint64) (*Generator, error) {
	g, err := cb.NewGenerator(seed)
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	return &Generator{g}, nil
}

// NewDeviceGenerator makes a generator that draws on dev itself: CUDA's
// Philox generator for a CUDA device (no host work, nothing to upload; the
// numbers differ from NewGenerator's for the same seed), the CPU generator
// for the CPU. A seed gives the same numbers in every run on the same
// device. A build without CUDA reports a CUDA device as an error.
func NewDeviceGenerator(seed uint64, dev Device) (*Generator, error) {
	dt, di := dev.code()
	g, err := cb.NewDeviceGenerator(seed, dt, di)
	if err != nil {
		return nil, fmt.Errorf("generator on %v: %w", dev, err)
	}
	return &Generator{g}, nil
}

// Close releases the generator; it is safe to call twice, and on nil.
func (g *Generator) Close() {
	if g != nil && g.g != (cb.Generator{}) {
		cb.FreeGenerator(g.g)
		g.g = cb.Generator{}
	}
}

// Randn draws standard normal numbers (mean 0, variance 1) into a new
// tensor of shape, cast to dtype on dev, owned by s (the caller when s is
// nil). A nil or closed generator, a negative dimension, an unsupported
// dtype, a missing device and a closed scope are errors.
func (g *Generator) Randn(s *Scope, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	return g.draw(s, false, shape, dtype, dev)
}

// Rand draws uniform numbers in [0, 1) as Randn draws normal ones.
func (g *Generator) Rand(s *Scope, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	return g.draw(s, true, shape, dtype, dev)
}

func (g *Generator) draw(s *Scope, uniform bool, shape []int64, dtype DType, dev Device) (*Tensor, error) {
	if g == nil || g.g == (cb.Generator{}) {
		return nil, fmt.Errorf("random: closed generator")
	}
	dt, di := dev.code()
	h, err := cb.Randn(g.g, uniform, shape, int(dtype), dt, di)
	if err != nil {
		return nil, fmt.Errorf("random %v: %w", shape, err)
	}
	return own(s, h)
}
