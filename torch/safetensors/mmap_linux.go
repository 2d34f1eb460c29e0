//go:build linux

package safetensors

import (
	"math"
	"os"
	"syscall"
)

// mmapFile maps size bytes of f read-only and shared.
func mmapFile(f *os.File, size int64) ([]byte, error) {
	if size > math.MaxInt {
		return nil, errTooLarge
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) error {
	return syscall.Munmap(b)
}
