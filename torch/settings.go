package torch

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// SetTF32 allows TF32 in CUDA matrix products and convolutions, for the
// whole process (off for parity checks); it has no effect on the CPU.
func SetTF32(on bool) error { return cb.SetTF32(on) }

// SetNumThreads sets libtorch's CPU thread count for the whole process
// (default: OMP_NUM_THREADS, else libtorch's choice); n below 1 is an
// error.
func SetNumThreads(n int) error { return cb.SetNumThreads(n) }

// LibtorchVersion is the version of the libtorch the engine was built
// against, e.g. 2 and 5 for 2.5.
func LibtorchVersion() (major, minor int) { return cb.Version() }

// Synchronize waits for the work queued on dev (nothing to do on the CPU);
// a device this build or machine lacks is an error.
func Synchronize(dev Device) error {
	if !dev.CUDA {
		return nil
	}
	return cb.CUDASynchronize(dev.Index)
}

// EmptyCache returns the CUDA caching allocator's cached, unused blocks to
// the driver (an error in a build without CUDA), so that another
// process, or a case measured next, starts from the memory live tensors
// hold.
func EmptyCache() error { return cb.CUDAEmptyCache() }

// MemoryStats is the CUDA caching allocator's view of one device, in bytes.
type MemoryStats struct {
	// Allocated is held by live tensors, Peak the most Allocated has been
	// since the start or ResetPeakMemory, Reserved what the allocator holds
	// from the driver (cached included).
	Allocated, Peak, Reserved int64
}

// CUDAMemory reports allocated, peak and reserved bytes on the CUDA device
// with dev's index (for the CPU device, CUDA device 0); without CUDA it is
// an error.
func CUDAMemory(dev Device) (MemoryStats, error) {
	a, p, r, err := cb.CUDAMemory(dev.Index)
	return MemoryStats{a, p, r}, err
}

// ResetPeakMemory restarts peak tracking on the CUDA device with dev's
// index, as CUDAMemory reads it; without CUDA it is an error.
func ResetPeakMemory(dev Device) error { return cb.CUDAResetPeak(dev.Index) }

func sortTensors(ts []safetensors.Tensor) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
}

// Timer measures GPU time between two points of a device's stream with
// CUDA events. It needs a CUDA build of libtorch 2.5 or later.
type Timer struct {
	start   cb.Event
	dev     int
	stopped bool
}

// StartTimer records the start event on the current stream of the CUDA
// device with dev's index (as CUDAMemory reads it); it is an error without
// CUDA timing events.
func StartTimer(dev Device) (*Timer, error) {
	e, err := cb.CUDAEventRecord(dev.Index)
	if err != nil {
		return nil, err
	}
	return &Timer{start: e, dev: dev.Index}, nil
}

// Stop records the end event, waits for it, and returns the milliseconds
// elapsed since StartTimer. The timer cannot be used again: a second Stop,
// or a nil timer, is an error.
func (t *Timer) Stop() (float64, error) {
	if t == nil || t.stopped {
		return 0, errors.New("timer: already stopped")
	}
	t.stopped = true
	defer cb.CUDAEventFree(t.start)
	end, err := cb.CUDAEventRecord(t.dev)
	if err != nil {
		return 0, err
	}
	defer cb.CUDAEventFree(end)
	return cb.CUDAEventElapsed(t.start, end)
}

// SetCuDNNBenchmark lets cuDNN pick the fastest convolution algorithm per
// shape by timing them on first use (process-wide; results may then differ
// in the last bits from run to run).
func SetCuDNNBenchmark(on bool) error { return cb.SetCuDNNBenchmark(on) }

// GroupNormMode selects how GroupNorm (and GroupNormAct) computes its
// statistics.
type GroupNormMode int64

// GroupNorm modes.
const (
	GroupNormNative      GroupNormMode = 0 // libtorch's group_norm everywhere
	GroupNormSplitCUDA   GroupNormMode = 1 // split reductions on CUDA (default), native on the CPU
	GroupNormSplitAlways GroupNormMode = 2 // split reductions on every device
)

// SetGroupNormMode chooses GroupNorm's kernels for the whole process; a
// value that is not one of the modes is an error.
func SetGroupNormMode(m GroupNormMode) error {
	if m < GroupNormNative || m > GroupNormSplitAlways {
		return fmt.Errorf("unknown GroupNorm mode %d", int64(m))
	}
	return cb.SetOption(cb.OptGroupNormSplit, int64(m))
}

// GroupNormModeNow is the current GroupNorm mode (the error is the
// bridge's, and does not happen in practice).
func GroupNormModeNow() (GroupNormMode, error) {
	v, err := cb.GetOption(cb.OptGroupNormSplit)
	return GroupNormMode(v), err
}

// SetShortAttention makes SDPA on CUDA use the math formulation for
// sequences of at most n tokens (n ≤ 0, the default 0: fused kernels
// always), for the whole process.
func SetShortAttention(n int64) error { return cb.SetOption(cb.OptShortAttention, n) }

// SetFusedLayerNorm makes LayerNorm over one trailing dimension run as one
// fused kernel on CUDA (one group of lanes a row, statistics in float32),
// where autograd records nothing and the fused kernels are on
// (SetFusedKernels); off, the default, it is libtorch's. For the whole
// process.
func SetFusedLayerNorm(on bool) error {
	var v int64
	if on {
		v = 1
	}
	return cb.SetOption(cb.OptFusedLayerNorm, v)
}

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
// support it (the UNet, the VAE decoder) run in the channels-last layout. A
// value that is not one of the modes means the contiguous layout
// everywhere.
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
