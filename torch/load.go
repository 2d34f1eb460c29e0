package torch

import (
	"fmt"
	"unsafe"

	"github.com/onestepvideo/osv-go/torch/safetensors"
)

var safetensorsDTypes = map[safetensors.DType]DType{
	"F32": Float32, "F16": Float16, "BF16": BFloat16, "F64": Float64,
	"I64": Int64, "I32": Int32, "I16": Int16, "I8": Int8, "U8": Uint8, "BOOL": Bool,
}

var safetensorsNames = func() map[DType]safetensors.DType {
	m := make(map[DType]safetensors.DType, len(safetensorsDTypes))
	for k, v := range safetensorsDTypes {
		m[v] = k
	}
	return m
}()

// ReadTensor copies one tensor of an open safetensors file from the mapping
// straight into libtorch (cast to dtype on dev; dtype 0 keeps the file's),
// with no copy on the Go heap. The result is owned by s.
func ReadTensor(s *Scope, f *safetensors.File, name string, dtype DType, dev Device) (*Tensor, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.Path, name)
	}
	src, ok := safetensorsDTypes[info.DType]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: dtype %s is not supported", f.Path, name, info.DType)
	}
	if dtype == 0 && src != Uint8 {
		dtype = src
	}
	b, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return Zeros(s, info.Shape, dtype, dev)
	}
	t, err := fromBlob(s, unsafe.Pointer(&b[0]), info.Shape, src, dtype, dev)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.Path, name, err)
	}
	return t, nil
}

// LoadFile reads every tensor of a safetensors file, in its own dtype, onto
// dev. The tensors are owned by s.
func LoadFile(s *Scope, path string, dev Device) (map[string]*Tensor, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]*Tensor, len(f.Header.Tensors))
	for _, name := range f.Names() {
		t, err := ReadTensor(s, f, name, 0, dev)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// SaveFile writes tensors (as stored: their own dtype, moved to the CPU) to a
// safetensors file atomically.
func SaveFile(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	list := make([]safetensors.Tensor, 0, len(tensors))
	for name, t := range tensors {
		st, ok := safetensorsNames[t.DType()]
		if !ok {
			return fmt.Errorf("%s: tensor %q: dtype %s cannot be saved", path, name, t.DType())
		}
		data, err := t.bytes()
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		list = append(list, safetensors.Tensor{Name: name, DType: st, Shape: t.Shape(), Data: data})
	}
	sortTensors(list)
	return safetensors.Write(path, list, metadata)
}
