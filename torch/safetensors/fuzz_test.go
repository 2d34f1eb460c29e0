package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// fuzzDTypes are the dtypes the round trip draws from.
var fuzzDTypes = []DType{F64, F32, F16, BF16, F8E4M3, F8E5M2, I64, I32, I16, I8, U64, U32, U16, U8, Bool}

// tensorsFrom turns fuzz bytes into tensors for Write: each run of bytes up
// to a 0xFF separator is one tensor: its first byte picks the dtype, the
// next up to three (mod 5) its shape, the rest its name. A last run, after
// a 0xFE byte, is one metadata entry, key and value split at its middle.
func tensorsFrom(b []byte) ([]Tensor, map[string]string) {
	var md map[string]string
	if i := slices.Index(b, 0xFE); i >= 0 {
		rest := b[i+1:]
		md = map[string]string{string(rest[:len(rest)/2]): string(rest[len(rest)/2:])}
		b = b[:i]
	}
	var ts []Tensor
	for run := range splitRuns(b) {
		if len(run) == 0 {
			continue
		}
		t := Tensor{DType: fuzzDTypes[int(run[0])%len(fuzzDTypes)]}
		run = run[1:]
		nd := min(len(run), 3)
		for _, d := range run[:nd] {
			t.Shape = append(t.Shape, int64(d%5))
		}
		t.Name = string(run[nd:])
		n, err := byteSize(t.DType, t.Shape)
		if err == nil {
			t.Data = make([]byte, n)
		}
		ts = append(ts, t)
	}
	return ts, md
}

func splitRuns(b []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for {
			i := slices.Index(b, 0xFF)
			if i < 0 {
				yield(b)
				return
			}
			if !yield(b[:i]) {
				return
			}
			b = b[i+1:]
		}
	}
}

// checkRoundTrip writes tensors' header (when Write accepts them) and
// parses it back: the same names, dtypes, shapes and metadata, the data
// laid out in the order given.
func checkRoundTrip(t *testing.T, ts []Tensor, md map[string]string) {
	prefix, err := encodeHeader(ts, md)
	if err != nil {
		return
	}
	size := int64(len(prefix))
	for _, x := range ts {
		size += int64(len(x.Data))
	}
	h, err := ParseHeader(prefix, size)
	if err != nil {
		t.Fatalf("a header Write made does not parse: %v\n%q", err, prefix[8:])
	}
	if h.DataStart != int64(len(prefix)) {
		t.Fatalf("DataStart %d, the header Write made ends at %d", h.DataStart, len(prefix))
	}
	if len(h.Tensors) != len(ts) {
		t.Fatalf("%d tensors written, %d parsed", len(ts), len(h.Tensors))
	}
	var offset int64
	for _, x := range ts {
		i := slices.IndexFunc(h.Tensors, func(in Info) bool { return in.Name == x.Name })
		if i < 0 {
			t.Fatalf("tensor %q written, not parsed (names %v)", x.Name, h.Tensors)
		}
		in := h.Tensors[i]
		shape := x.Shape
		if shape == nil {
			shape = []int64{}
		}
		end := offset + int64(len(x.Data))
		if in.DType != x.DType || !slices.Equal(in.Shape, shape) || in.Begin != offset || in.End != end {
			t.Fatalf("tensor %q written as %s %v [%d, %d], parsed as %s %v [%d, %d]",
				x.Name, x.DType, shape, offset, end, in.DType, in.Shape, in.Begin, in.End)
		}
		offset = end
	}
	if len(md) > 0 && !maps.Equal(md, h.Metadata) || len(md) == 0 && h.Metadata != nil {
		t.Fatalf("metadata %v written, %v parsed", md, h.Metadata)
	}
}

// checkAgainstJSON compares an accepted header with the JSON read
// independently: every entry but __metadata__ is a tensor with the dtype,
// shape and data_offsets the JSON gives.
func checkAgainstJSON(t *testing.T, js []byte, h *Header) {
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(js, &entries); err != nil {
		t.Fatalf("accepted a header encoding/json rejects: %v", err)
	}
	n := 0
	for name, raw := range entries {
		if name == metadataKey {
			var md map[string]string
			if err := json.Unmarshal(raw, &md); err != nil || !maps.Equal(md, h.Metadata) {
				t.Fatalf("metadata %s parsed as %v (%v)", raw, h.Metadata, err)
			}
			continue
		}
		n++
		var e struct {
			DType       string  `json:"dtype"`
			Shape       []int64 `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("tensor %q accepted, entry %s: %v", name, raw, err)
		}
		i := slices.IndexFunc(h.Tensors, func(in Info) bool { return in.Name == name })
		if i < 0 {
			t.Fatalf("entry %q is not among the parsed tensors", name)
		}
		in := h.Tensors[i]
		if len(e.DataOffsets) != 2 || string(in.DType) != e.DType || !slices.Equal(in.Shape, e.Shape) ||
			in.Begin != e.DataOffsets[0] || in.End != e.DataOffsets[1] {
			t.Fatalf("entry %q %s parsed as %s %v [%d, %d]", name, raw, in.DType, in.Shape, in.Begin, in.End)
		}
	}
	if n != len(h.Tensors) {
		t.Fatalf("%d tensor entries, %d parsed", n, len(h.Tensors))
	}
}

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
	// Seeds for the round trip: tensors separated by 0xFF, metadata after 0xFE.
	f.Add([]byte("\x01\x02\x03weight\xff\x0d\x04bias\xff\x03scalar\xfeformatpt"), int64(0), int8(0))
	f.Add([]byte("\x00\x00\x00\x00empty\xff\x0e\x01\x01\x01b\u00e9\u4e16"), int64(3), int8(0))

	f.Fuzz(func(t *testing.T, header []byte, dataLen int64, lenDelta int8) {
		ts, md := tensorsFrom(header)
		checkRoundTrip(t, ts, md)

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
		checkAgainstJSON(t, prefix[8:8+n], h)
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
