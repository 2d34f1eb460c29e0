package torch

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"

	"github.com/onestepvideo/osv-go/torch/safetensors"
	"golang.org/x/sync/errgroup"
)

// InitKind says how a parameter is drawn by InitRandom.
type InitKind int

// Initialisations (PyTorch's defaults for the layers that use them).
const (
	InitUniform InitKind = iota // U(−1/√fan_in, 1/√fan_in), as PyTorch's Linear and Conv layers
	InitOnes                    // every element 1 (norm weights)
	InitZeros                   // every element 0 (biases of norms)
	InitConst                   // every element Init.Value
)

// Init is a parameter's random initialisation.
type Init struct {
	Kind  InitKind // how the parameter is drawn
	FanIn int64    // for InitUniform: the inputs per output (values below 1 count as 1)
	Value float64  // for InitConst
}

// Param is one named parameter; T is nil until loaded or initialised.
type Param struct {
	Name  string  // the checkpoint key, e.g. down_blocks.0.resnets.0.conv1.weight
	Shape []int64 // the shape the checkpoint must have
	Init  Init    // how InitRandom draws it
	T     *Tensor // the values, owned by the set (Free releases them), or nil
}

// Params is the ordered set of a model's parameters, named by the
// reference checkpoint's keys, and the registry of the model's layers that
// may carry a low-rank adapter, by their checkpoint path (package lora
// attaches adapters to them). Make one with NewParams (the zero value is
// not ready for Add); it is not safe for concurrent use.
type Params struct {
	list    []*Param
	byName  map[string]*Param
	modules map[string]any
	ignored map[string][]int64
}

// NewParams makes an empty set, ready for Add and Register.
func NewParams() *Params {
	return &Params{byName: map[string]*Param{}, modules: map[string]any{}, ignored: map[string][]int64{}}
}

// Module returns the layer registered at a checkpoint path, and whether
// there is one.
func (ps *Params) Module(path string) (any, bool) {
	m, ok := ps.modules[path]
	return m, ok
}

// Modules lists the paths of the registered layers, sorted.
func (ps *Params) Modules() []string {
	out := make([]string, 0, len(ps.modules))
	for p := range ps.modules {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Register records the layer at a checkpoint path (the path without its
// ".weight" suffix) as one that may carry an adapter.
func (ps *Params) Register(path string, m any) { ps.modules[path] = m }

// Add registers a parameter of shape (copied) and returns it, with T nil
// until Load or InitRandom. A duplicate name is a bug in the model's
// construction: Add panics (with a string, not an *Error; Recover turns it
// into an internal error).
func (ps *Params) Add(name string, shape []int64, init Init) *Param {
	if _, dup := ps.byName[name]; dup {
		panic("torch: parameter registered twice: " + name)
	}
	p := &Param{Name: name, Shape: append([]int64(nil), shape...), Init: init}
	ps.list = append(ps.list, p)
	ps.byName[name] = p
	return p
}

// Ignore accepts a checkpoint key the model does not use (a buffer older
// checkpoints carry, say): Load checks its shape when present and reads
// nothing.
func (ps *Params) Ignore(name string, shape []int64) {
	ps.ignored[name] = append([]int64(nil), shape...)
}

// List returns the parameters in registration order (the set's own slice:
// do not modify it).
func (ps *Params) List() []*Param { return ps.list }

// Get returns the parameter with a name, and whether there is one.
func (ps *Params) Get(name string) (*Param, bool) {
	p, ok := ps.byName[name]
	return p, ok
}

// Count is the number of scalar parameters (the elements of every
// registered shape, loaded or not).
func (ps *Params) Count() int64 {
	var n int64
	for _, p := range ps.list {
		n += numel(p.Shape)
	}
	return n
}

// Free releases every parameter's tensor and sets it to nil; the set
// stays usable (Load or InitRandom fill it again).
func (ps *Params) Free() {
	for _, p := range ps.list {
		p.T.Free()
		p.T = nil
	}
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Load fills every parameter from a checkpoint, cast to dtype on dev (dtype
// 0 keeps each tensor's own), replacing tensors already there. It is strict:
// any key the model lacks (other than those given to Ignore), any
// parameter the checkpoint lacks and any shape that differs is reported, all
// at once and prefixed with what, before anything is loaded. A nil
// checkpoint, an unsupported dtype and a missing device are errors too. On
// error no parameter is left loaded.
func (ps *Params) Load(ck *safetensors.Checkpoint, what string, dtype DType, dev Device) error {
	return ps.LoadPrefixed(ck, "", what, dtype, dev)
}

// LoadPrefixed is Load from a checkpoint whose keys are the parameters'
// names after prefix (peft's "base_model.model.", say); a key without the
// prefix is unexpected.
func (ps *Params) LoadPrefixed(ck *safetensors.Checkpoint, prefix, what string, dtype DType, dev Device) error {
	if ck == nil {
		return fmt.Errorf("%s: nil checkpoint", what)
	}
	var missing, unexpected, misshaped []string
	for _, p := range ps.list {
		_, info, ok := ck.Lookup(prefix + p.Name)
		if !ok {
			missing = append(missing, prefix+p.Name)
			continue
		}
		if !equalShape(info.Shape, p.Shape) {
			misshaped = append(misshaped, fmt.Sprintf("%s: checkpoint %v, model %v", prefix+p.Name, info.Shape, p.Shape))
		}
	}
	for _, key := range ck.Names() {
		name, ok := strings.CutPrefix(key, prefix)
		if !ok {
			unexpected = append(unexpected, key)
			continue
		}
		if shape, ok := ps.ignored[name]; ok {
			if _, info, _ := ck.Lookup(key); !equalShape(info.Shape, shape) {
				misshaped = append(misshaped, fmt.Sprintf("%s: checkpoint %v, model %v", key, info.Shape, shape))
			}
			continue
		}
		if _, ok := ps.byName[name]; !ok {
			unexpected = append(unexpected, key)
		}
	}
	if len(missing)+len(unexpected)+len(misshaped) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: checkpoint does not match the model", what)
		listKeys(&b, "missing keys", missing)
		listKeys(&b, "unexpected keys", unexpected)
		listKeys(&b, "mis-shaped keys", misshaped)
		return fmt.Errorf("%s", b.String())
	}
	// Tensors are copied from the mapping into libtorch (and to the device)
	// several at a time; each goroutine fills its own parameter.
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, p := range ps.list {
		p.T.Free()
		p.T = nil
		g.Go(func() error {
			f, _, _ := ck.Lookup(prefix + p.Name)
			t, err := ReadTensor(nil, f, prefix+p.Name, dtype, dev)
			p.T = t
			return err
		})
	}
	if err := g.Wait(); err != nil {
		ps.Free()
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func listKeys(b *strings.Builder, title string, keys []string) {
	if len(keys) == 0 {
		return
	}
	sort.Strings(keys)
	const show = 12
	fmt.Fprintf(b, "; %d %s: %s", len(keys), title, strings.Join(keys[:min(show, len(keys))], ", "))
	if len(keys) > show {
		fmt.Fprintf(b, ", ... (%d more)", len(keys)-show)
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// InitRandom draws every parameter from its Init with g (uniform numbers
// are drawn on the CPU in float32, so a seed gives the same values
// everywhere), as dtype on dev, replacing tensors already there. A nil or
// closed generator, an unsupported dtype and a missing device are errors;
// parameters drawn before the failure stay drawn (Init frees them all).
func (ps *Params) InitRandom(g *Generator, dtype DType, dev Device) (err error) {
	defer Recover(&err)
	for _, p := range ps.list {
		var t *Tensor
		switch p.Init.Kind {
		case InitUniform:
			s := NewScope()
			u, err := g.Rand(s, p.Shape, Float32, CPU)
			if err != nil {
				s.Close()
				return err
			}
			bound := 1 / math.Sqrt(float64(max(p.Init.FanIn, 1)))
			w := s.AddScalar(s.MulScalar(u, 2*bound), -bound)
			t, err = w.To(nil, dtype, dev)
			s.Close()
			if err != nil {
				return err
			}
		case InitOnes:
			t, err = Full(nil, p.Shape, 1, dtype, dev)
		case InitZeros:
			t, err = Full(nil, p.Shape, 0, dtype, dev)
		case InitConst:
			t, err = Full(nil, p.Shape, p.Init.Value, dtype, dev)
		}
		if err != nil {
			return fmt.Errorf("init %s: %w", p.Name, err)
		}
		p.T.Free()
		p.T = t
	}
	return nil
}
