package cbridge

// #include <stdlib.h>
// #include "cbridge.h"
import "C"

import "unsafe"

// SetTF32 allows or forbids TF32 in CUDA matrix products and convolutions.
func SetTF32(enabled bool) error {
	e := C.int(0)
	if enabled {
		e = 1
	}
	return status(C.osv_set_tf32(e))
}

// AutocastState is one thread's autocast setting for a device type.
type AutocastState struct {
	Enabled bool
	DType   int
	Cache   bool
}

// Autocast turns the calling thread's autocast for CPU or CUDA on with
// dtype (its cache of cast weights off), or off, and returns the state it
// replaced.
func Autocast(cuda, enabled bool, dtype int) (AutocastState, error) {
	return autocast(cuda, AutocastState{Enabled: enabled, DType: dtype}, false)
}

// RestoreAutocast sets the calling thread's autocast back to st.
func RestoreAutocast(cuda bool, st AutocastState) error {
	_, err := autocast(cuda, st, true)
	return err
}

func autocast(cuda bool, st AutocastState, restore bool) (AutocastState, error) {
	b := func(v bool) C.int {
		if v {
			return 1
		}
		return 0
	}
	var en, dt, cache C.int
	err := status(C.osv_autocast(b(cuda), b(st.Enabled), C.int(st.DType), b(st.Cache), b(restore), &en, &dt, &cache))
	return AutocastState{Enabled: en != 0, DType: int(dt), Cache: cache != 0}, err
}

// SetNumThreads sets libtorch's intra-op CPU thread count.
func SetNumThreads(n int) error { return status(C.osv_set_num_threads(C.int(n))) }

// CUDABuilt reports whether the bridge was compiled with CUDA.
func CUDABuilt() bool { return C.osv_cuda_built() != 0 }

// CUDADeviceCount is the number of visible CUDA devices (0 without CUDA).
func CUDADeviceCount() int { return int(C.osv_cuda_device_count()) }

// CUDASynchronize waits for all work on a device.
func CUDASynchronize(dev int) error { return status(C.osv_cuda_synchronize(C.int(dev))) }

// CUDAMemory reports the caching allocator's current, peak and reserved bytes.
func CUDAMemory(dev int) (allocated, peak, reserved int64, err error) {
	var a, p, r C.int64_t
	err = status(C.osv_cuda_memory(C.int(dev), &a, &p, &r))
	return int64(a), int64(p), int64(r), err
}

// CUDAResetPeak restarts peak-memory tracking on a device.
func CUDAResetPeak(dev int) error { return status(C.osv_cuda_reset_peak(C.int(dev))) }

// CUDAEmptyCache returns cached, unused blocks to the driver.
func CUDAEmptyCache() error { return status(C.osv_cuda_empty_cache()) }

// Event is a timing event recorded on a CUDA stream.
type Event struct{ p *C.osv_event }

// CUDAEventRecord records an event on a device's current stream.
func CUDAEventRecord(dev int) (Event, error) {
	var e *C.osv_event
	err := status(C.osv_cuda_event_record(C.int(dev), &e))
	return Event{e}, err
}

// CUDAEventElapsed waits for end and returns the milliseconds from start to end.
func CUDAEventElapsed(start, end Event) (float64, error) {
	var ms C.double
	err := status(C.osv_cuda_event_elapsed(start.p, end.p, &ms))
	return float64(ms), err
}

// CUDAEventFree releases an event.
func CUDAEventFree(e Event) { C.osv_cuda_event_free(e.p) }

// SetCuDNNBenchmark lets cuDNN time its algorithms and keep the fastest per shape.
func SetCuDNNBenchmark(enabled bool) error {
	e := C.int(0)
	if enabled {
		e = 1
	}
	return status(C.osv_set_cudnn_benchmark(e))
}

// Option keys (cbridge.h).
const (
	OptGroupNormSplit = C.OSV_OPT_GROUP_NORM_SPLIT
	OptShortAttention = C.OSV_OPT_SHORT_ATTENTION
	OptFusedLayerNorm = C.OSV_OPT_FUSED_LAYER_NORM
)

// SetOption sets a kernel choice.
func SetOption(key int, value int64) error {
	return status(C.osv_set_option(C.int(key), C.int64_t(value)))
}

// GetOption reads a kernel choice.
func GetOption(key int) (int64, error) {
	var v C.int64_t
	err := status(C.osv_get_option(C.int(key), &v))
	return int64(v), err
}

// ProfileStart starts libtorch's profiler (with CUDA kernels when cuda).
func ProfileStart(cuda bool) error {
	c := C.int(0)
	if cuda {
		c = 1
	}
	return status(C.osv_profile_start(c))
}

// ProfileStop stops the profiler and writes its Chrome trace to path.
func ProfileStop(path string) error {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	return status(C.osv_profile_stop(cp))
}
