package safetensors

import (
	"encoding/binary"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	seeds := []struct {
		header  string
		dataLen int64
	}{
		{`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[],"data_offsets":[16,18]}}`, 18},
		{`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0},
		{`{}`, 0},
		{``, 0},
		{`{"a":`, 4},
		{`[1,2,3]`, 0},
		{`{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}`, 2},
		{`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,2]}}`, 2},
		{`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,2]}}`, 2},
		{`{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,0]}}`, 2},
		{`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 1},
		{`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 8},
		{`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 8},
		{`{"__metadata__":{"k":1}}`, 0},
		{`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2},
	}
	for _, s := range seeds {
		f.Add([]byte(s.header), s.dataLen, int8(0))
	}
	f.Add([]byte(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`), int64(1), int8(-3))
	f.Add([]byte(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`), int64(-60), int8(5))

	f.Fuzz(func(t *testing.T, header []byte, dataLen int64, lenDelta int8) {
		prefix := make([]byte, 8, 8+len(header))
		binary.LittleEndian.PutUint64(prefix, uint64(int64(len(header))+int64(lenDelta)))
		prefix = append(prefix, header...)
		fileSize := int64(len(prefix))
		if dataLen > 0 && fileSize > (1<<62)-dataLen {
			return
		}
		fileSize += dataLen

		h, err := ParseHeader(prefix, fileSize)
		if err != nil {
			if h != nil {
				t.Fatalf("non-nil header with error %v", err)
			}
			return
		}
		n := int64(binary.LittleEndian.Uint64(prefix))
		if h.DataStart != 8+n {
			t.Fatalf("DataStart %d, want %d", h.DataStart, 8+n)
		}
		dataSize := fileSize - h.DataStart
		if dataSize < 0 {
			t.Fatalf("negative data region %d", dataSize)
		}
		seen := make(map[string]bool)
		prevEnd := int64(0)
		for i, ti := range h.Tensors {
			if seen[ti.Name] || ti.Name == "" || ti.Name == metadataKey {
				t.Fatalf("bad or repeated name %q", ti.Name)
			}
			seen[ti.Name] = true
			if ti.Begin < 0 || ti.End < ti.Begin || ti.End > dataSize {
				t.Fatalf("tensor %q range [%d, %d] outside data region of %d", ti.Name, ti.Begin, ti.End, dataSize)
			}
			if ti.DType.Size() == 0 {
				t.Fatalf("tensor %q has unknown dtype %q", ti.Name, ti.DType)
			}
			count := int64(1)
			for _, d := range ti.Shape {
				if d < 0 {
					t.Fatalf("tensor %q has negative dim", ti.Name)
				}
				if d != 0 && count > (1<<63-1)/d {
					t.Fatalf("tensor %q element count overflows", ti.Name)
				}
				count *= d
			}
			if ti.End-ti.Begin != count*int64(ti.DType.Size()) {
				t.Fatalf("tensor %q spans %d bytes, want %d", ti.Name, ti.End-ti.Begin, count*int64(ti.DType.Size()))
			}
			if i > 0 {
				p := h.Tensors[i-1]
				if p.Begin > ti.Begin || (p.Begin == ti.Begin && p.Name >= ti.Name) {
					t.Fatalf("tensors %q and %q out of order", p.Name, ti.Name)
				}
			}
			if ti.Begin < ti.End {
				if ti.Begin < prevEnd {
					t.Fatalf("tensor %q overlaps an earlier tensor", ti.Name)
				}
				prevEnd = ti.End
			}
		}
	})
}
