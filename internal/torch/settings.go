package torch

import (
	"sort"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
	"github.com/onestepvideo/osv-go/internal/torch/safetensors"
)

// SetTF32 allows TF32 in CUDA matrix products and convolutions (off for
// parity checks).
func SetTF32(on bool) error { return cb.SetTF32(on) }

// SetNumThreads sets libtorch's CPU thread count.
func SetNumThreads(n int) error { return cb.SetNumThreads(n) }

// LibtorchVersion is the libtorch the engine was built against.
func LibtorchVersion() (major, minor int) { return cb.Version() }

// Synchronize waits for queued work on dev (nothing to do on the CPU).
func Synchronize(dev Device) error {
	if !dev.CUDA {
		return nil
	}
	return cb.CUDASynchronize(dev.Index)
}

// MemoryStats is the CUDA caching allocator's view of one device.
type MemoryStats struct{ Allocated, Peak, Reserved int64 }

// CUDAMemory reports allocated, peak and reserved bytes on a CUDA device.
func CUDAMemory(dev Device) (MemoryStats, error) {
	a, p, r, err := cb.CUDAMemory(dev.Index)
	return MemoryStats{a, p, r}, err
}

// ResetPeakMemory restarts peak tracking on a CUDA device.
func ResetPeakMemory(dev Device) error { return cb.CUDAResetPeak(dev.Index) }

func sortTensors(ts []safetensors.Tensor) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
}
