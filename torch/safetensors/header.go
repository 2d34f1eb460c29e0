package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes (100 MiB), by
// both the reader and Write.
const MaxHeaderSize = 100 << 20

// metadataKey is the reserved header key holding free-form string metadata.
const metadataKey = "__metadata__"

// Info describes one tensor stored in a file.
type Info struct {
	Name  string  // the tensor's key in the header
	DType DType   // its element type
	Shape []int64 // its shape (empty for a scalar)
	// Begin and End are the byte offsets of its data, End exclusive,
	// relative to the start of the data region (Header.DataStart).
	Begin int64
	End   int64
}

// Header is a parsed and validated safetensors header.
type Header struct {
	// Tensors is sorted by Begin, then by Name.
	Tensors []Info
	// Metadata holds the "__metadata__" object, or nil when absent.
	Metadata map[string]string
	// DataStart is the file offset of the data region (8 + header length).
	DataStart int64
}

// rawInfo is the JSON shape of one tensor entry.
type rawInfo struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ParseHeader parses and validates the header of a safetensors file of
// fileSize bytes. prefix must hold at least the 8-byte length field and the
// JSON header that follows it; any further bytes are ignored. It is an
// error when the length field is 0, above MaxHeaderSize or past the end of
// the file; when the JSON is not one object, has duplicate keys or trailing
// data; when __metadata__ is not an object of strings; and when a tensor
// has an empty name, an unknown dtype, a missing or negative shape, or
// data_offsets that are not two, run backwards, past the end of the file,
// disagree with its dtype and shape, or overlap another tensor's.
func ParseHeader(prefix []byte, fileSize int64) (*Header, error) {
	h, err := parseHeader(prefix, fileSize)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return h, nil
}

// headerLength validates the 8-byte length field against the file size and
// returns the JSON header length.
func headerLength(prefix []byte, fileSize int64) (int64, error) {
	if fileSize < 8 {
		return 0, fmt.Errorf("file is %d bytes, shorter than the 8-byte header length field", fileSize)
	}
	if len(prefix) < 8 {
		return 0, fmt.Errorf("prefix is %d bytes, shorter than the 8-byte header length field", len(prefix))
	}
	n := binary.LittleEndian.Uint64(prefix[:8])
	switch {
	case n == 0:
		return 0, errors.New("header length is 0")
	case n > MaxHeaderSize:
		return 0, fmt.Errorf("header length %d exceeds the maximum of %d bytes", n, MaxHeaderSize)
	case int64(n) > fileSize-8:
		return 0, fmt.Errorf("header length %d runs past the end of the file (%d bytes)", n, fileSize)
	}
	return int64(n), nil
}

func parseHeader(prefix []byte, fileSize int64) (*Header, error) {
	n, err := headerLength(prefix, fileSize)
	if err != nil {
		return nil, err
	}
	if int64(len(prefix)) < 8+n {
		return nil, fmt.Errorf("prefix is %d bytes, header needs %d", len(prefix), 8+n)
	}
	h := &Header{DataStart: 8 + n}
	dataSize := fileSize - h.DataStart
	if err := decodeEntries(prefix[8:8+n], h, dataSize); err != nil {
		return nil, err
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.Name < b.Name
	})
	if err := checkOverlap(h.Tensors); err != nil {
		return nil, err
	}
	return h, nil
}

// decodeEntries walks the top-level JSON object, filling h.Tensors and
// h.Metadata. It rejects duplicate keys and trailing data.
func decodeEntries(js []byte, h *Header, dataSize int64) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("header is not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("header is not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("header is not valid JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("header is not valid JSON: unexpected token %v", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("header is not valid JSON: %v", err)
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q in header", key)
		}
		seen[key] = true
		if key == metadataKey {
			md, err := decodeMetadata(raw)
			if err != nil {
				return err
			}
			h.Metadata = md
			continue
		}
		info, err := decodeInfo(key, raw, dataSize)
		if err != nil {
			return err
		}
		h.Tensors = append(h.Tensors, info)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("header is not valid JSON: %v", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("header is not valid JSON: %v", err)
		}
		return fmt.Errorf("header has trailing data after the JSON object: %v", tok)
	}
	return nil
}

func decodeMetadata(raw json.RawMessage) (map[string]string, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%s must be an object of strings, got %.40s", metadataKey, raw)
	}
	md := make(map[string]string)
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("%s must be an object of strings: %v", metadataKey, err)
	}
	return md, nil
}

func decodeInfo(name string, raw json.RawMessage, dataSize int64) (Info, error) {
	if name == "" {
		return Info{}, errors.New("tensor with an empty name")
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Info{}, fmt.Errorf("tensor %q: entry is not a JSON object", name)
	}
	var ri rawInfo
	if err := json.Unmarshal(raw, &ri); err != nil {
		return Info{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	dt := DType(ri.DType)
	if dt.Size() == 0 {
		return Info{}, fmt.Errorf("tensor %q has unknown dtype %q", name, ri.DType)
	}
	if ri.Shape == nil {
		return Info{}, fmt.Errorf("tensor %q has no shape", name)
	}
	want, err := byteSize(dt, ri.Shape)
	if err != nil {
		return Info{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	if len(ri.DataOffsets) != 2 {
		return Info{}, fmt.Errorf("tensor %q: data_offsets must hold 2 entries, got %d", name, len(ri.DataOffsets))
	}
	begin, end := ri.DataOffsets[0], ri.DataOffsets[1]
	switch {
	case begin < 0:
		return Info{}, fmt.Errorf("tensor %q has negative data_offsets [%d, %d]", name, begin, end)
	case end < begin:
		return Info{}, fmt.Errorf("tensor %q has data_offsets [%d, %d] with end before begin", name, begin, end)
	case end > dataSize:
		return Info{}, fmt.Errorf("tensor %q data_offsets [%d, %d] run past the end of the data region (%d bytes)", name, begin, end, dataSize)
	case end-begin != want:
		return Info{}, fmt.Errorf("tensor %q: dtype %s shape %v expects %d bytes, got %d from data_offsets [%d, %d]",
			name, dt, ri.Shape, want, end-begin, begin, end)
	}
	return Info{Name: name, DType: dt, Shape: ri.Shape, Begin: begin, End: end}, nil
}

// checkOverlap reports two tensors whose non-empty byte ranges intersect.
// tensors must be sorted by Begin.
func checkOverlap(tensors []Info) error {
	last := -1
	for i, t := range tensors {
		if t.Begin == t.End {
			continue
		}
		if last >= 0 && t.Begin < tensors[last].End {
			p := tensors[last]
			return fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap", p.Name, p.Begin, p.End, t.Name, t.Begin, t.End)
		}
		last = i
	}
	return nil
}
