package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Tensor is one tensor to be written by Write.
type Tensor struct {
	Name  string  // its key (not empty, not __metadata__)
	DType DType   // its element type
	Shape []int64 // its shape (nil or empty for a scalar)
	Data  []byte  // its raw little-endian, row-major bytes: exactly the shape's size
}

// headerEntry is the JSON shape of one tensor entry written by Write.
type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Write stores tensors and optional metadata at path. Data is laid out in
// the order given; the header has sorted keys and is padded with spaces to
// a multiple of 8 bytes. The file is written to path+".tmp", synced and
// renamed into place, so that path holds either the old file or the whole
// new one. An empty, reserved or duplicate name, a name or metadata that
// is not valid UTF-8 (JSON would store it altered), an unknown dtype, a
// negative dimension, Data of the wrong length, a header above
// MaxHeaderSize and a failed write are errors naming the path; then
// path+".tmp" is removed.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := writeAtomic(path, header, tensors); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}

// encodeHeader validates tensors and returns the length field followed by
// the padded JSON header.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	entries := make(map[string]any, len(tensors)+1)
	var offset int64
	for _, t := range tensors {
		if t.Name == "" {
			return nil, errors.New("tensor with an empty name")
		}
		if t.Name == metadataKey {
			return nil, fmt.Errorf("tensor name %q is reserved", t.Name)
		}
		if !utf8.ValidString(t.Name) {
			return nil, fmt.Errorf("tensor name %q is not valid UTF-8", t.Name)
		}
		if _, dup := entries[t.Name]; dup {
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		want, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		if int64(len(t.Data)) != want {
			return nil, fmt.Errorf("tensor %q: dtype %s shape %v expects %d bytes, got %d",
				t.Name, t.DType, t.Shape, want, len(t.Data))
		}
		if offset > math.MaxInt64-want {
			return nil, errors.New("total data size overflows int64")
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		entries[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{offset, offset + want}}
		offset += want
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("metadata %q: %q is not valid UTF-8", k, v)
		}
	}
	if len(metadata) > 0 {
		entries[metadataKey] = metadata
	}
	var buf bytes.Buffer
	buf.Write(make([]byte, 8))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(entries); err != nil {
		return nil, err
	}
	buf.Truncate(buf.Len() - 1) // drop the newline Encode appends
	for (buf.Len()-8)%8 != 0 {
		buf.WriteByte(' ')
	}
	out := buf.Bytes()
	n := len(out) - 8
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header of %d bytes exceeds the maximum of %d", n, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(out[:8], uint64(n))
	return out, nil
}

func writeAtomic(path string, header []byte, tensors []Tensor) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir flushes a directory entry change to disk where the platform
// allows it; failures are ignored because the data itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
