package discriminator

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// configKey is the safetensors metadata entry that holds the resolved
// Config as JSON.
const configKey = "osv_discriminator_config"

// Save writes the trainable parameters and the spectral norms' u vectors
// (keys upsampler.*, spatial.j.*, temporal.j.*) to a safetensors file,
// with the resolved Config in its metadata. The backbone is not saved.
func (d *Discriminator) Save(path string) error {
	if !d.loaded() {
		return errClosed
	}
	cfg, err := json.Marshal(d.Config)
	if err != nil {
		return fmt.Errorf("discriminator: %w", err)
	}
	ts := make(map[string]*torch.Tensor, len(d.state.List()))
	for _, p := range d.state.List() {
		ts[p.Name] = p.T
	}
	if err := torch.SaveFile(path, ts, map[string]string{"format": "pt", configKey: string(cfg)}); err != nil {
		return fmt.Errorf("discriminator: %w", err)
	}
	return nil
}

// Load reads a file written by Save and builds the discriminator it holds
// over the backbone b (which must be the backbone it was trained with, or
// one of the same width and at least as deep). Loading is strict; the
// trainable parameters require gradients afterwards.
func Load(b *Backbone, path string) (*Discriminator, error) {
	if !b.loaded() {
		return nil, errors.New("discriminator: the backbone is closed or not loaded")
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("discriminator: %w", err)
	}
	raw, ok := f.Header.Metadata[configKey]
	f.Close()
	if !ok {
		return nil, fmt.Errorf("discriminator: %s: no %q metadata (not written by Save)", path, configKey)
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return nil, fmt.Errorf("discriminator: %s: metadata %q: %w", path, configKey, err)
	}
	rc, err := cfg.resolve(b.Config.NumHiddenLayers, b.Config.HiddenSize)
	if err != nil {
		return nil, fmt.Errorf("discriminator: %s: %w", path, err)
	}
	if err := freeze(b); err != nil {
		return nil, err
	}
	ck, err := safetensors.OpenCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("discriminator: %w", err)
	}
	defer ck.Close()
	d := build(b, rc)
	if err := d.state.Load(ck, "discriminator: "+path, torch.Float32, b.device); err != nil {
		return nil, err
	}
	if err := d.markTrainable(); err != nil {
		d.state.Free()
		return nil, err
	}
	return d, nil
}
