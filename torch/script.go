package torch

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/onestepvideo/osv-go/internal/cbridge"
)

// ScriptModule is a TorchScript module read from a file that PyTorch's
// torch.jit.save wrote (a scripted or traced model), run through
// libtorch's TorchScript interpreter. Its tensors live on the device it was
// loaded onto. It is not safe for concurrent use; Close releases it.
type ScriptModule struct {
	h    cbridge.Module
	path string
	dev  Device
}

// ScriptArg is one argument of a ScriptModule method's schema.
type ScriptArg struct {
	Name        string // the parameter's name, e.g. "x"
	Type        string // its TorchScript type, e.g. "Tensor", "bool", "Optional[int]"
	HasDefault  bool   // whether the caller may leave it out
	Default     string // the default value as TorchScript prints it (when HasDefault)
	KeywordOnly bool   // whether it can only be passed by name
}

// ScriptSignature is a ScriptModule method's schema: its arguments after
// self, in order, and its result types.
type ScriptSignature struct {
	Schema  string      // the whole schema as TorchScript prints it
	Args    []ScriptArg // the arguments, self left out
	Returns []string    // the result types (one "Tensor" for a method returning a tensor)
}

// Arg returns the argument called name and whether there is one.
func (sig ScriptSignature) Arg(name string) (ScriptArg, bool) {
	for _, a := range sig.Args {
		if a.Name == name {
			return a, true
		}
	}
	return ScriptArg{}, false
}

// LoadScriptModule reads a TorchScript file with its tensors placed on dev,
// in eval mode. A missing file, a file that is not TorchScript (a pickled
// state_dict, a safetensors file), a file libtorch cannot read (operators
// it lacks) and a missing device are errors naming the file.
func LoadScriptModule(path string, dev Device) (*ScriptModule, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("torchscript: %w", err)
	}
	if err := dev.Check(); err != nil {
		return nil, fmt.Errorf("torchscript: %s: %w", path, err)
	}
	dt, di := dev.code()
	h, err := cbridge.ScriptLoad(path, dt, di)
	if err != nil {
		major, minor := LibtorchVersion()
		return nil, fmt.Errorf("torchscript: %s: not a TorchScript file that libtorch %d.%d can read: %w", path, major, minor, err)
	}
	return &ScriptModule{h: h, path: path, dev: dev}, nil
}

// Path is the file the module was read from.
func (m *ScriptModule) Path() string { return m.path }

// Device is where the module's tensors are.
func (m *ScriptModule) Device() Device { return m.dev }

// Close releases the module; it is safe to call twice, and on nil.
func (m *ScriptModule) Close() error {
	if m == nil || m.h.Nil() {
		return nil
	}
	cbridge.ScriptFree(m.h)
	m.h = cbridge.Module{}
	return nil
}

func (m *ScriptModule) check(method string) error {
	if m == nil || m.h.Nil() {
		return fmt.Errorf("torchscript: %s on a closed or nil module", method)
	}
	return nil
}

// Signature is the schema of the module's method (usually "forward"). A
// method the module lacks, or a closed module, is an error naming the file.
func (m *ScriptModule) Signature(method string) (ScriptSignature, error) {
	if err := m.check(method); err != nil {
		return ScriptSignature{}, err
	}
	text, err := cbridge.ScriptSignature(m.h, method)
	if err != nil {
		return ScriptSignature{}, fmt.Errorf("torchscript: %s: %w", m.path, err)
	}
	var sig ScriptSignature
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		f := strings.Split(line, "\x1f")
		switch {
		case f[0] == "schema" && len(f) == 2:
			sig.Schema = f[1]
		case f[0] == "arg" && len(f) == 6:
			sig.Args = append(sig.Args, ScriptArg{Name: f[1], Type: f[2], HasDefault: f[3] == "1", Default: f[4], KeywordOnly: f[5] == "1"})
		case f[0] == "return" && len(f) == 2:
			sig.Returns = append(sig.Returns, f[1])
		default:
			return ScriptSignature{}, fmt.Errorf("torchscript: %s: %s: unreadable schema entry %q", m.path, method, line)
		}
	}
	return sig, nil
}

// Call runs the module's method on positional tensor arguments and keyword
// arguments (bool, int or float64 values; integers up to 2⁵³), without recording gradients,
// and returns its result, which must be a tensor, owned by s (the caller
// when s is nil). Arguments that do not fit the method's schema (a missing
// or unknown name, a wrong type), an error raised inside the method (a
// shape it rejects), a result that is not a tensor, a nil or released
// tensor and a closed module or scope are errors naming the file and the
// method.
func (m *ScriptModule) Call(s *Scope, method string, args []*Tensor, kwargs map[string]any) (*Tensor, error) {
	if err := m.check(method); err != nil {
		return nil, err
	}
	if err := live(method, args...); err != nil {
		return nil, fmt.Errorf("torchscript: %s: %s: %w", m.path, method, err)
	}
	if s != nil && s.closed {
		return nil, &Error{Op: "scope", Err: errClosed}
	}
	hs := make([]cbridge.Tensor, len(args))
	for i, t := range args {
		hs[i] = t.h
	}
	names := make([]string, 0, len(kwargs))
	for k := range kwargs {
		names = append(names, k)
	}
	sort.Strings(names)
	kinds := make([]int, len(names))
	values := make([]float64, len(names))
	for i, k := range names {
		switch v := kwargs[k].(type) {
		case bool:
			kinds[i] = cbridge.KwBool
			if v {
				values[i] = 1
			}
		case int:
			kinds[i], values[i] = cbridge.KwInt, float64(v)
		case int64:
			kinds[i], values[i] = cbridge.KwInt, float64(v)
		case float64:
			kinds[i], values[i] = cbridge.KwFloat, v
		default:
			return nil, fmt.Errorf("torchscript: %s: %s: keyword argument %s is a %T: want bool, int or float64", m.path, method, k, v)
		}
	}
	h, err := cbridge.ScriptCall(m.h, method, hs, names, kinds, values)
	if err != nil {
		return nil, fmt.Errorf("torchscript: %s: %s: %w", m.path, method, err)
	}
	return own(s, h)
}
