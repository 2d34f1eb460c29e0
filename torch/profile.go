package torch

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

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
	tr, err := ReadDeviceTrace(path)
	return tr.Times, err
}

// DeviceTrace is what a trace says about the device: the time of each
// kind of device event, and how busy the device was between the first
// event's start and the last one's end.
type DeviceTrace struct {
	Times  []DeviceTime // by name, the longest first (as DeviceTimes)
	Events int          // device events (kernels, copies, memsets)
	SpanUS float64      // from the first event's start to the last one's end
	BusyUS float64      // the time in which at least one event ran (overlaps counted once)
}

// GapUS is the time within the span in which no device event ran: the
// device waiting for the host, or for work outside the trace.
func (t DeviceTrace) GapUS() float64 { return t.SpanUS - t.BusyUS }

// ReadDeviceTrace reads a Chrome trace written by StopProfiler: the sums
// DeviceTimes returns, and the device's timeline (span, busy time and the
// gaps between). Errors are DeviceTimes'.
func ReadDeviceTrace(path string) (DeviceTrace, error) {
	var out DeviceTrace
	b, err := os.ReadFile(path)
	if err != nil {
		return out, err
	}
	var trace struct {
		Events []struct {
			Name string  `json:"name"`
			Cat  string  `json:"cat"`
			Ph   string  `json:"ph"`
			TS   float64 `json:"ts"`
			Dur  float64 `json:"dur"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(b, &trace); err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	by := map[string]*DeviceTime{}
	var spans [][2]float64
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
		spans = append(spans, [2]float64{e.TS, e.TS + max(e.Dur, 0)})
	}
	out.Times = make([]DeviceTime, 0, len(by))
	for _, k := range by {
		out.Times = append(out.Times, *k)
	}
	slices.SortFunc(out.Times, func(a, b DeviceTime) int {
		if c := cmp.Compare(b.US, a.US); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	out.Events = len(spans)
	if len(spans) == 0 {
		return out, nil
	}
	slices.SortFunc(spans, func(a, b [2]float64) int { return cmp.Compare(a[0], b[0]) })
	lo, hi := spans[0][0], spans[0][1]
	first, last := lo, hi
	for _, sp := range spans[1:] {
		last = max(last, sp[1])
		if sp[0] > hi {
			out.BusyUS += hi - lo
			lo, hi = sp[0], sp[1]
			continue
		}
		hi = max(hi, sp[1])
	}
	out.BusyUS += hi - lo
	out.SpanUS = last - first
	return out, nil
}

// The kernel classes KernelClass returns.
const (
	ClassConvolution = "convolution"
	ClassGEMM        = "gemm"
	ClassAttention   = "attention"
	ClassNorm        = "norm"
	ClassElementwise = "elementwise"
	ClassReduction   = "reduction"
	ClassCopy        = "copy"
	ClassOther       = "other"
)

// KernelClasses lists the classes in the order a table prints them.
var KernelClasses = []string{ClassConvolution, ClassGEMM, ClassAttention, ClassNorm,
	ClassElementwise, ClassReduction, ClassCopy, ClassOther}

// kernelRules map a lower-cased kernel name to its class: the first rule
// with a matching fragment wins, so attention (cuDNN's fused attention is
// named "…sdpa…flash_fprop…", and softmax counts too) comes before
// convolutions, and convolutions (cuDNN's implicit GEMMs) before GEMMs.
var kernelRules = []struct {
	class string
	frags []string
}{
	{ClassCopy, []string{"copy", "memcpy", "memset", "catarray", "transpose", "permute", "nchwtonhwc", "nhwctonchw"}},
	{ClassAttention, []string{"fmha", "flash", "attention", "attn", "sdpa", "softmax"}},
	{ClassConvolution, []string{"conv", "fprop", "dgrad", "wgrad", "cudnn::", "implicit_gemm"}},
	{ClassGEMM, []string{"gemm", "nvjet", "cublas", "cutlass", "splitk", "matmul", "gemv"}},
	{ClassReduction, []string{"reduce_kernel", "reduction"}},
	{ClassNorm, []string{"norm", "stats_", "welford", "gammabeta", "rowwisemoments", "computefusedparams"}},
	{ClassElementwise, []string{"elementwise", "geglu", "gelu", "silu", "upsample", "where", "index", "foreach", "adam", "fill"}},
}

// KernelClass sorts a device event into one of KernelClasses by its name
// (copies and memsets by their category): convolution, GEMM, attention,
// normalisation, elementwise, reduction, copy, or other.
func KernelClass(t DeviceTime) string {
	if t.Category == "gpu_memcpy" || t.Category == "gpu_memset" {
		return ClassCopy
	}
	n := strings.ToLower(t.Name)
	for _, r := range kernelRules {
		for _, f := range r.frags {
			if strings.Contains(n, f) {
				return r.class
			}
		}
	}
	return ClassOther
}
