package safetensors

import (
	"fmt"
	"math"
)

// DType is the element type of a tensor, spelled as in the safetensors header.
type DType string

// Element types understood by this package (F8_E4M3 and F8_E5M2 are the
// 8-bit floats; BOOL is one byte per element).
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"
)

// Size returns the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case F8E4M3, F8E5M2, I8, U8, Bool:
		return 1
	}
	return 0
}

// numel returns the number of elements of a tensor with the given shape.
// An empty shape is a scalar with one element.
func numel(shape []int64) (int64, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d at index %d in shape %v", d, i, shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("element count of shape %v overflows int64", shape)
		}
		n *= d
	}
	return n, nil
}

// byteSize returns numel(shape) * d.Size(), checking for overflow.
func byteSize(d DType, shape []int64) (int64, error) {
	size := int64(d.Size())
	if size == 0 {
		return 0, fmt.Errorf("unknown dtype %q", string(d))
	}
	n, err := numel(shape)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/size {
		return 0, fmt.Errorf("byte size of shape %v with dtype %s overflows int64", shape, d)
	}
	return n * size, nil
}
