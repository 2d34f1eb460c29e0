package torch

import (
	"sort"
	"sync/atomic"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
	"github.com/onestepvideo/osv-go/torch/safetensors"
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

// Timer measures GPU time between two points of a device's stream with
// CUDA events.
type Timer struct {
	start cb.Event
	dev   int
}

// StartTimer records the start event on a CUDA device.
func StartTimer(dev Device) (*Timer, error) {
	e, err := cb.CUDAEventRecord(dev.Index)
	if err != nil {
		return nil, err
	}
	return &Timer{start: e, dev: dev.Index}, nil
}

// Stop records the end event, waits for it, and returns the elapsed
// milliseconds. The timer cannot be used again.
func (t *Timer) Stop() (float64, error) {
	defer cb.CUDAEventFree(t.start)
	end, err := cb.CUDAEventRecord(t.dev)
	if err != nil {
		return 0, err
	}
	defer cb.CUDAEventFree(end)
	return cb.CUDAEventElapsed(t.start, end)
}

// SetCuDNNBenchmark lets cuDNN pick the fastest convolution algorithm per
// shape by timing them on first use.
func SetCuDNNBenchmark(on bool) error { return cb.SetCuDNNBenchmark(on) }

// GroupNormMode selects how GroupNorm computes its statistics.
type GroupNormMode int64

// GroupNorm modes.
const (
	GroupNormNative      GroupNormMode = 0 // libtorch's group_norm everywhere
	GroupNormSplitCUDA   GroupNormMode = 1 // split reductions on CUDA (default), native on the CPU
	GroupNormSplitAlways GroupNormMode = 2 // split reductions on every device
)

// SetGroupNormMode chooses GroupNorm's kernels for the whole process.
func SetGroupNormMode(m GroupNormMode) error { return cb.SetOption(cb.OptGroupNormSplit, int64(m)) }

// GroupNormModeNow is the current GroupNorm mode.
func GroupNormModeNow() (GroupNormMode, error) {
	v, err := cb.GetOption(cb.OptGroupNormSplit)
	return GroupNormMode(v), err
}

// SetShortAttention makes attention on CUDA use the math formulation for
// sequences of at most n tokens (0, the default: fused kernels always).
func SetShortAttention(n int64) error { return cb.SetOption(cb.OptShortAttention, n) }

// LayoutMode selects the memory layout of convolutional activations.
type LayoutMode int32

// Layout modes.
const (
	LayoutContiguous       LayoutMode = 0 // NCHW everywhere
	LayoutChannelsLastCUDA LayoutMode = 1 // channels-last on CUDA, NCHW on the CPU
	LayoutChannelsLast     LayoutMode = 2 // channels-last on every device
)

var layoutMode atomic.Int32

func init() { layoutMode.Store(int32(LayoutChannelsLastCUDA)) }

// SetLayoutMode chooses, for the whole process, where the models that
// support it (the UNet, the VAE decoder) run in the channels-last layout.
func SetLayoutMode(m LayoutMode) { layoutMode.Store(int32(m)) }

// ChannelsLastOn reports whether the layout mode puts activations on dev
// in the channels-last layout.
func ChannelsLastOn(dev Device) bool {
	switch LayoutMode(layoutMode.Load()) {
	case LayoutChannelsLast:
		return true
	case LayoutChannelsLastCUDA:
		return dev.CUDA
	}
	return false
}

// ChannelsLastEverywhere sets the channels-last layout and GroupNorm's
// split statistics (which read that layout in place) on every device, the
// CPU included, so that the CUDA defaults can be checked there; restore
// puts the previous modes back.
func ChannelsLastEverywhere() (restore func() error, err error) {
	gn, err := GroupNormModeNow()
	if err != nil {
		return nil, err
	}
	layout := LayoutMode(layoutMode.Load())
	if err := SetGroupNormMode(GroupNormSplitAlways); err != nil {
		return nil, err
	}
	SetLayoutMode(LayoutChannelsLast)
	return func() error {
		SetLayoutMode(layout)
		return SetGroupNormMode(gn)
	}, nil
}
