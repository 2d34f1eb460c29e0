package safetensors

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// File is a safetensors file mapped read-only into memory (read whole on
// platforms other than Linux). Slices returned by Bytes point into the
// mapping and must not be used after Close. Its methods may be called from
// several goroutines at once, except Close.
type File struct {
	Path   string  // the path it was opened at
	Header *Header // the validated header

	data  []byte
	index map[string]int
}

// Open reads and validates the header of the file at path and maps the
// whole file read-only; Close unmaps it. A missing or unreadable file,
// something other than a regular file, a file shorter than its header
// says, and a header that is not valid (see ParseHeader) are errors naming
// the path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	size := st.Size()
	h, err := readHeader(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	data, err := mmapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: map: %w", path, err)
	}
	index := make(map[string]int, len(h.Tensors))
	for i, t := range h.Tensors {
		index[t.Name] = i
	}
	return &File{Path: path, Header: h, data: data, index: index}, nil
}

// readHeader reads only the length field and the JSON header from r.
func readHeader(r io.ReaderAt, size int64) (*Header, error) {
	var lenBuf [8]byte
	if size >= 8 {
		if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
			return nil, fmt.Errorf("read header length: %w", err)
		}
	}
	n, err := headerLength(lenBuf[:], size)
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, 8+n)
	if _, err := r.ReadAt(prefix, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return parseHeader(prefix, size)
}

// Names returns the tensor names in header order (sorted by offset).
func (f *File) Names() []string {
	names := make([]string, len(f.Header.Tensors))
	for i, t := range f.Header.Tensors {
		names[i] = t.Name
	}
	return names
}

// Info returns the description of the named tensor (its shape a copy), and
// whether the file has it.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.index[name]
	if !ok {
		return Info{}, false
	}
	info := f.Header.Tensors[i]
	info.Shape = slices.Clone(info.Shape)
	return info, true
}

// Bytes returns the raw data of the named tensor (little-endian, row-major,
// Info's DType and Shape) as a slice into the mapping, without copying. The
// slice is read-only (on Linux, writing to it crashes the process) and its
// capacity ends at the tensor's last byte. A name the file lacks and a closed file are errors.
func (f *File) Bytes(name string) ([]byte, error) {
	i, ok := f.index[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: tensor %q not found in %s", name, f.Path)
	}
	if f.data == nil {
		return nil, fmt.Errorf("safetensors: %s: file is closed", f.Path)
	}
	t := f.Header.Tensors[i]
	lo, hi := f.Header.DataStart+t.Begin, f.Header.DataStart+t.End
	return f.data[lo:hi:hi], nil
}

// Close unmaps the file; slices from Bytes are then invalid. It is safe to
// call more than once.
func (f *File) Close() error {
	if f.data == nil {
		return nil
	}
	data := f.data
	f.data = nil
	if err := munmap(data); err != nil {
		return fmt.Errorf("safetensors: %s: unmap: %w", f.Path, err)
	}
	return nil
}

var errTooLarge = errors.New("file too large to map on this platform")
