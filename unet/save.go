package unet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onestepvideo/osv-go/torch"
)

// savedConfig is config.json as diffusers writes it: the class name, then
// the Config's keys.
type savedConfig struct {
	ClassName string `json:"_class_name"`
	Config
}

// Save writes the model as a diffusers folder that Load (and diffusers)
// reads back: dir/config.json and dir/diffusion_pytorch_model.safetensors
// with every weight in the model's dtype. Each file is written to a
// temporary name and renamed.
func (m *Model) Save(dir string) error {
	if m == nil || m.params == nil || m.convIn.Weight.T == nil {
		return errClosed
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unet: %w", err)
	}
	ts := make(map[string]*torch.Tensor, len(m.params.List()))
	for _, p := range m.params.List() {
		ts[p.Name] = p.T
	}
	if err := torch.SaveFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("unet: %w", err)
	}
	b, err := json.MarshalIndent(savedConfig{ClassName: "UNetSpatioTemporalConditionModel", Config: m.Config}, "", "  ")
	if err != nil {
		return fmt.Errorf("unet: %w", err)
	}
	tmp := filepath.Join(dir, "config.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("unet: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "config.json"))
}
