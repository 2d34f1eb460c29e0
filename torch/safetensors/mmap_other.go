//go:build !linux

package safetensors

import (
	"io"
	"math"
	"os"
)

// mmapFile reads the whole file into memory on platforms without mmap
// support in this package.
func mmapFile(f *os.File, size int64) ([]byte, error) {
	if size > math.MaxInt {
		return nil, errTooLarge
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return nil, err
	}
	return b, nil
}

func munmap(b []byte) error {
	return nil
}
