package torch

import (
	"fmt"
	"strings"
)

// DType is a tensor element type; its values are libtorch's ScalarType codes
// (the same codes gotorch uses). Only the constants below are supported:
// another value is reported as an error. The zero value is Uint8.
type DType int8

// Element types (Float16 is IEEE half precision, BFloat16 brain float).
const (
	Uint8    DType = 0
	Int8     DType = 1
	Int16    DType = 2
	Int32    DType = 3
	Int64    DType = 4
	Float16  DType = 5
	Float32  DType = 6
	Float64  DType = 7
	Bool     DType = 11
	BFloat16 DType = 15
)

var dtypeNames = map[DType]string{
	Uint8: "uint8", Int8: "int8", Int16: "int16", Int32: "int32", Int64: "int64",
	Float16: "float16", Float32: "float32", Float64: "float64", Bool: "bool", BFloat16: "bfloat16",
}

// String is the dtype's name ("float32", "bfloat16", ...; dtype(N) for a
// value that is not one of the constants).
func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dtype(%d)", int8(d))
}

// Size is the number of bytes of one element (0 for a value that is not
// one of the constants).
func (d DType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Int16, Float16, BFloat16:
		return 2
	case Int32:
		return 4
	case Int64, Float64:
		return 8
	case Float32:
		return 4
	}
	return 0
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float16 || d == Float32 || d == Float64 || d == BFloat16
}

// ParseDType reads fp32/float32/f32/float, fp16/float16/f16/half,
// bf16/bfloat16, fp64/float64/f64/double, int64/i64/long, uint8/u8/byte and
// bool, in any case and with surrounding spaces; another name is an error.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "fp32", "float32", "f32", "float":
		return Float32, nil
	case "fp16", "float16", "f16", "half":
		return Float16, nil
	case "bf16", "bfloat16":
		return BFloat16, nil
	case "fp64", "float64", "f64", "double":
		return Float64, nil
	case "int64", "i64", "long":
		return Int64, nil
	case "uint8", "u8", "byte":
		return Uint8, nil
	case "bool":
		return Bool, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want fp32, fp16, bf16, fp64, int64, uint8 or bool)", s)
}
