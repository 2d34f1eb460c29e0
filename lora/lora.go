package lora

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// Model is a model whose layers can carry adapters (unet.Model, ...): its
// parameter set registers them by checkpoint path.
type Model interface {
	Params() *torch.Params
}

// Set is the adapters attached to one model.
type Set struct {
	Config  Config
	params  *torch.Params // keys <module>.lora_A.weight, <module>.lora_B.weight
	layers  []nn.Adaptable
	adapter map[string]*nn.Adapter
	merged  bool
}

// Inject attaches fresh adapters to every layer of m that cfg targets:
// A drawn like a Linear layer's weight (seeded), B zero, so the model's
// output is unchanged. Adapter weights are float32 on the model's device.
func Inject(m Model, cfg Config, seed uint64) (*Set, error) {
	s, err := attach(m, cfg)
	if err != nil {
		return nil, err
	}
	g, err := torch.NewGenerator(seed)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	if err := s.params.InitRandom(g, torch.Float32, deviceOf(s.layers[0])); err != nil {
		s.detach()
		return nil, fmt.Errorf("lora: %w", err)
	}
	return s, nil
}

// Load reads a peft adapter folder and attaches it to m. Keys must match
// the targeted layers exactly (strict, like the models' loading).
func Load(m Model, dir string) (*Set, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "adapter_model.safetensors")
	ck, err := safetensors.OpenCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer ck.Close()
	s, err := attach(m, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "adapter_config.json"), err)
	}
	if err := s.params.LoadPrefixed(ck, peftPrefix(ck.Names()), "lora: "+path, torch.Float32, deviceOf(s.layers[0])); err != nil {
		s.detach()
		return nil, err
	}
	return s, nil
}

func deviceOf(l nn.Adaptable) torch.Device { return l.Base().T.Device() }

// attach registers adapter parameters (uninitialised) on every targeted layer.
func attach(m Model, cfg Config) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ps := m.Params()
	s := &Set{Config: cfg, params: torch.NewParams(), adapter: map[string]*nn.Adapter{}}
	for _, path := range ps.Modules() {
		if !cfg.matches(path) {
			continue
		}
		m, _ := ps.Module(path)
		l, ok := m.(nn.Adaptable)
		if !ok {
			continue
		}
		if l.Base().T == nil {
			return nil, fmt.Errorf("lora: the model is closed or not loaded")
		}
		sa, sb := l.AdapterShapes(cfg.R)
		fanIn := int64(1)
		for _, d := range sa[1:] {
			fanIn *= d
		}
		a := &nn.Adapter{
			A:       s.params.Add(path+".lora_A.weight", sa, torch.Init{Kind: torch.InitUniform, FanIn: fanIn}),
			B:       s.params.Add(path+".lora_B.weight", sb, torch.Init{Kind: torch.InitZeros}),
			Scale:   cfg.Scale(),
			Enabled: true,
		}
		s.layers = append(s.layers, l)
		s.adapter[path] = a
	}
	if len(s.layers) == 0 {
		return nil, fmt.Errorf("lora: no layer matches target_modules %v", cfg.TargetModules)
	}
	for _, l := range s.layers {
		if existing := adapterOf(l); existing != nil {
			return nil, fmt.Errorf("lora: %s already has an adapter", l.ModulePath())
		}
	}
	for _, l := range s.layers {
		l.Attach(s.adapter[l.ModulePath()])
	}
	return s, nil
}

func adapterOf(l nn.Adaptable) *nn.Adapter {
	switch v := l.(type) {
	case *nn.Linear:
		return v.Adapter
	case *nn.Conv:
		return v.Adapter
	}
	return nil
}

// detach removes the adapters from the layers and frees them.
func (s *Set) detach() {
	for _, l := range s.layers {
		l.Attach(nil)
	}
	s.params.Free()
}

// Close unmerges if needed, removes the adapters from the model and frees them.
func (s *Set) Close() error {
	if s == nil || s.params == nil {
		return nil
	}
	var err error
	if s.merged {
		err = s.Unmerge()
	}
	s.detach()
	s.params = nil
	return err
}

// Modules lists the adapted layers' paths.
func (s *Set) Modules() []string {
	out := make([]string, 0, len(s.layers))
	for _, l := range s.layers {
		out = append(out, l.ModulePath())
	}
	sort.Strings(out)
	return out
}

// Trainable lists the adapter parameters (A and B of every layer).
func (s *Set) Trainable() []*torch.Param { return s.params.List() }

// NumParams is the number of scalar adapter parameters.
func (s *Set) NumParams() int64 { return s.params.Count() }

// Enable switches the update on or off (no effect on merged weights:
// unmerge first).
func (s *Set) Enable(on bool) {
	for _, a := range s.adapter {
		a.Enabled = on
	}
}

// Merged reports whether the update is folded into the base weights.
func (s *Set) Merged() bool { return s.merged }

// Merge folds Scale·B A into each base weight, so that inference runs at
// the base model's cost.
func (s *Set) Merge() error { return s.fold(1) }

// Unmerge subtracts what Merge added.
func (s *Set) Unmerge() error { return s.fold(-1) }

func (s *Set) fold(sign float64) (err error) {
	defer torch.Recover(&err)
	if (sign > 0) == s.merged {
		if s.merged {
			return fmt.Errorf("lora: already merged")
		}
		return fmt.Errorf("lora: not merged")
	}
	for _, l := range s.layers {
		a := s.adapter[l.ModulePath()]
		w := l.Base()
		c := torch.NewScope()
		delta := deltaWeight(c, a, w.Shape)
		// In place: whatever holds the base weight (a recorded CUDA graph
		// among them) sees the merged one.
		err := torch.CopyInto(w.T, c.Add(w.T, c.Cast(c.MulScalar(delta, sign*a.Scale), w.T.DType())))
		c.Close()
		if err != nil {
			return fmt.Errorf("lora: %s: %w", l.ModulePath(), err)
		}
		a.Merged = sign > 0
	}
	s.merged = sign > 0
	return nil
}

// deltaWeight is B A reshaped to the base weight's shape (float32).
func deltaWeight(c *torch.Scope, a *nn.Adapter, shape []int64) *torch.Tensor {
	r := a.A.Shape[0]
	am := c.Reshape(c.Cast(a.A.T, torch.Float32), r, -1)           // [r, in·k]
	bm := c.Reshape(c.Cast(a.B.T, torch.Float32), a.B.Shape[0], r) // [out, r]
	return c.Reshape(c.Matmul(bm, am), shape...)
}

// Save writes the adapters in peft's layout: dir/adapter_model.safetensors
// (keys <module>.lora_A.weight, <module>.lora_B.weight) and
// dir/adapter_config.json.
func (s *Set) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	ts := map[string]*torch.Tensor{}
	for _, p := range s.params.List() {
		ts[p.Name] = p.T
	}
	if err := torch.SaveFile(filepath.Join(dir, "adapter_model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	cfg := s.Config
	cfg.PeftType = "LORA"
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "adapter_config.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "adapter_config.json"))
}

// peftPrefix is the prefix peft's save_pretrained puts before the model's
// module paths ("base_model.model."), when every key has it, or "" (the
// layout diffusers' and this package's Save write).
func peftPrefix(keys []string) string {
	const prefix = "base_model.model."
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			return ""
		}
	}
	if len(keys) == 0 {
		return ""
	}
	return prefix
}
