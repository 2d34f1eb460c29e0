package vae

import (
	"strconv"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

func itoa[T ~int | ~int64](i T) string { return strconv.FormatInt(int64(i), 10) }

// Model is AutoencoderKLTemporalDecoder: a 2-d KL encoder and a decoder
// that mixes neighbouring frames. Its methods may be called from one
// goroutine at a time; the weights are read-only while they run.
type Model struct {
	Config Config
	params *torch.Params
	dtype  torch.DType
	device torch.Device

	encoder   *encoder
	quantConv *nn.Conv
	decoder   *temporalDecoder
}

// build lays out the model's layers and registers their parameters under
// diffusers' keys. cfg must be valid.
func build(cfg Config) *Model {
	ps := torch.NewParams()
	m := &Model{Config: cfg, params: ps}
	m.encoder = newEncoder(ps, cfg)
	m.quantConv = nn.NewConv2d(ps, "quant_conv", 2*cfg.LatentChannels, 2*cfg.LatentChannels, 1, 1, 0)
	m.decoder = newTemporalDecoder(ps, cfg)
	return m
}

// DType is the dtype of the weights and of the computation.
func (m *Model) DType() torch.DType { return m.dtype }

// Device is where the weights live.
func (m *Model) Device() torch.Device { return m.device }

// NumParams is the number of scalar parameters.
func (m *Model) NumParams() int64 { return m.params.Count() }

// Params lists the model's parameters (for the module's own packages).
func (m *Model) Params() *torch.Params { return m.params }

// Close releases the weights. It is safe to call twice.
func (m *Model) Close() error {
	if m != nil && m.params != nil {
		m.params.Free()
	}
	return nil
}

// closed reports whether the weights are gone (or were never loaded).
func (m *Model) closed() bool {
	return m == nil || m.params == nil || m.quantConv.Weight.T == nil
}
