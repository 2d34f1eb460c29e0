package torch

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// StartProfiler starts libtorch's Kineto profiler: operators on the CPU,
// and kernels and copies on dev when it is a CUDA device. One profiler
// runs at a time in a process: starting a second is an error.
func StartProfiler(dev Device) error { return cb.ProfileStart(dev.CUDA) }

// StopProfiler stops the profiler and writes what it recorded to path as a
// Chrome trace (JSON; chrome://tracing and Perfetto read it). It is an
// error when no profiler runs or path cannot be written (the profiler is
// stopped either way).
func StopProfiler(path string) error { return cb.ProfileStop(path) }

// DeviceTime is the time a device spent in every launch of one kernel, or
// in one kind of copy or memset, in a trace StopProfiler wrote.
type DeviceTime struct {
	Name     string  // the kernel's (or copy's) name
	Category string  // "kernel", "gpu_memcpy" or "gpu_memset"
	Calls    int     // launches
	US       float64 // their summed duration in microseconds
}

// DeviceTimes reads a Chrome trace written by StopProfiler and sums the
// durations of its device events (kernels, copies and memsets) by name,
// the longest first. A file that cannot be read or is not a trace is an
// error naming it; a trace without device events (a CPU profile) gives an
// empty list.
func DeviceTimes(path string) ([]DeviceTime, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var trace struct {
		Events []struct {
			Name string  `json:"name"`
			Cat  string  `json:"cat"`
			Ph   string  `json:"ph"`
			Dur  float64 `json:"dur"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(b, &trace); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	by := map[string]*DeviceTime{}
	for _, e := range trace.Events {
		if e.Ph != "X" || (e.Cat != "kernel" && e.Cat != "gpu_memcpy" && e.Cat != "gpu_memset") {
			continue
		}
		k := by[e.Name]
		if k == nil {
			k = &DeviceTime{Name: e.Name, Category: e.Cat}
			by[e.Name] = k
		}
		k.Calls++
		k.US += e.Dur
	}
	out := make([]DeviceTime, 0, len(by))
	for _, k := range by {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b DeviceTime) int {
		if c := cmp.Compare(b.US, a.US); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out, nil
}
