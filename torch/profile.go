package torch

import cb "github.com/onestepvideo/osv-go/internal/cbridge"

// StartProfiler starts libtorch's Kineto profiler: operators on the CPU,
// and kernels and copies on dev when it is a CUDA device. One profiler
// runs at a time in a process: starting a second is an error.
func StartProfiler(dev Device) error { return cb.ProfileStart(dev.CUDA) }

// StopProfiler stops the profiler and writes what it recorded to path as a
// Chrome trace (JSON; chrome://tracing and Perfetto read it). It is an
// error when no profiler runs or path cannot be written (the profiler is
// stopped either way).
func StopProfiler(path string) error { return cb.ProfileStop(path) }
