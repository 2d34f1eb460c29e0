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
// straight into libtorch, cast to dtype on dev, with no copy on the Go heap.
// dtype 0 keeps the file's dtype; since 0 is also Uint8, a tensor stored in
// another dtype cannot be read as Uint8 (cast it afterwards). The result is
// owned by s (the caller when s is nil). A nil or closed file, a name the
// file lacks, a dtype the engine does not support (F8_*, U16, U32, U64), a
// missing device and a closed scope are errors naming the file and tensor.
func ReadTensor(s *Scope, f *safetensors.File, name string, dtype DType, dev Device) (*Tensor, error) {
	if f == nil {
		return nil, fmt.Errorf("safetensors: nil file reading tensor %q", name)
	}
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
// dev, by name; the file is closed before it returns. The tensors are owned
// by s (the caller when s is nil). A missing, truncated or malformed file,
// an unsupported dtype, a missing device and a closed scope are errors
// naming the file; then no tensor is left allocated.
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
			for _, t := range out {
				t.Free()
			}
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// SaveFile writes tensors by name (as stored: their own dtype and shape,
// copied to the CPU, made contiguous) and optional string metadata to a
// safetensors file at path, atomically (a temporary file renamed into
// place). A nil or released tensor, an empty or reserved name, and a file
// that cannot be written are errors naming the path.
func SaveFile(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	list := make([]safetensors.Tensor, 0, len(tensors))
	for name, t := range tensors {
		if err := live("save", t); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
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
