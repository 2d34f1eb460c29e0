package lora

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultTargets are OSV's LoRA targets in SVD's UNet.
var DefaultTargets = []string{
	"to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
	"conv1", "conv2", "conv_shortcut", "time_emb_proj",
}

// Config is the part of peft's adapter_config.json that defines a LoRA.
type Config struct {
	PeftType      string   `json:"peft_type"`
	R             int64    `json:"r"`
	LoraAlpha     float64  `json:"lora_alpha"`
	TargetModules []string `json:"target_modules"`
}

// DefaultConfig is rank r with α = r (scale 1) on DefaultTargets.
func DefaultConfig(r int64) Config {
	return Config{PeftType: "LORA", R: r, LoraAlpha: float64(r), TargetModules: append([]string(nil), DefaultTargets...)}
}

// Scale is α/r.
func (c Config) Scale() float64 { return c.LoraAlpha / float64(c.R) }

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.PeftType != "" && c.PeftType != "LORA":
		return fmt.Errorf("lora: peft_type %q is not LORA", c.PeftType)
	case c.R <= 0:
		return fmt.Errorf("lora: r must be positive, got %d", c.R)
	case c.LoraAlpha <= 0:
		return fmt.Errorf("lora: lora_alpha must be positive, got %g", c.LoraAlpha)
	case len(c.TargetModules) == 0:
		return fmt.Errorf("lora: target_modules is empty")
	}
	return nil
}

// matches reports whether a module path is targeted: equal to a target or
// ending with "." + target (peft's rule).
func (c Config) matches(path string) bool {
	for _, t := range c.TargetModules {
		if path == t || strings.HasSuffix(path, "."+t) {
			return true
		}
	}
	return false
}

// ReadConfig reads dir/adapter_config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "adapter_config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("lora: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("lora: %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
