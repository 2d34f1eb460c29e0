package torch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// The profiler records the operators run between start and stop and
// writes them as a Chrome trace.
func TestProfilerWritesTrace(t *testing.T) {
	dev := CPU
	if cb.CUDADeviceCount() > 0 {
		dev = Device{CUDA: true}
	}
	require.NoError(t, StartProfiler(dev))
	require.Error(t, StartProfiler(dev), "a second profiler")
	s := NewScope()
	a, err := FromFloat32(s, []float32{1, 2, 3, 4}, []int64{2, 2}, Float32, dev)
	require.NoError(t, err)
	s.Matmul(a, a)
	s.Close()
	require.NoError(t, Synchronize(dev))
	path := filepath.Join(t.TempDir(), "trace.json")
	err = StopProfiler(path)
	require.Error(t, StopProfiler(path), "no profiler running")
	if err != nil {
		// A libtorch built without Kineto (Debian's) records nothing to save;
		// it must say so rather than write an empty trace.
		require.Contains(t, err.Error(), "Kineto")
		require.NoFileExists(t, path)
		t.Skip("this libtorch has no Kineto:", err)
	}

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var trace struct {
		Events []struct {
			Name string `json:"name"`
			Cat  string `json:"cat"`
		} `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(b, &trace), "the trace is JSON")
	var names []string
	for _, e := range trace.Events {
		names = append(names, e.Name)
	}
	require.Contains(t, strings.Join(names, "\n"), "aten::m", "the matrix product is in the trace")
}

// DeviceTimes sums a trace's device events by name, longest first (ties
// by name), and leaves out the host's operators.
func TestDeviceTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": [
		{"ph": "X", "cat": "kernel", "name": "b", "dur": 3},
		{"ph": "X", "cat": "gpu_memset", "name": "Memset", "dur": 1},
		{"ph": "X", "cat": "kernel", "name": "a", "dur": 3},
		{"ph": "X", "cat": "kernel", "name": "b", "dur": 2},
		{"ph": "X", "cat": "cpu_op", "name": "aten::add", "dur": 50}
	]}`), 0o644))
	ks, err := DeviceTimes(path)
	require.NoError(t, err)
	require.Equal(t, []DeviceTime{{"b", "kernel", 2, 5}, {"a", "kernel", 1, 3}, {"Memset", "gpu_memset", 1, 1}}, ks)
	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "dur": 9}]}`), 0o644))
	ks, err = DeviceTimes(path)
	require.NoError(t, err)
	require.Empty(t, ks)
	_, err = DeviceTimes(filepath.Join(t.TempDir(), "none.json"))
	require.ErrorContains(t, err, "none.json")
}
