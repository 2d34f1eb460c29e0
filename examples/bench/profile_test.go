package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

func TestKernelTableFromATrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": [
		{"ph": "X", "cat": "kernel", "name": "gemm", "dur": 10},
		{"ph": "X", "cat": "kernel", "name": "silu", "dur": 4},
		{"ph": "X", "cat": "kernel", "name": "gemm", "dur": 30.5},
		{"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "dur": 2},
		{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "dur": 100},
		{"ph": "f", "cat": "kernel", "name": "gemm"}
	]}`), 0o644))
	ks, err := torch.DeviceTimes(path)
	require.NoError(t, err)
	require.Equal(t, []torch.DeviceTime{
		{Name: "gemm", Category: "kernel", Calls: 2, US: 40.5},
		{Name: "silu", Category: "kernel", Calls: 1, US: 4},
		{Name: "Memcpy HtoD", Category: "gpu_memcpy", Calls: 1, US: 2},
	}, ks)
	var out bytes.Buffer
	writeKernelTable(&out, "case", ks, 2)
	require.Contains(t, out.String(), "case: 0.0 ms of GPU time in 3 kinds of kernel")
	require.Contains(t, out.String(), "87.1%")
	require.NotContains(t, out.String(), "Memcpy", "only the top rows")

	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": [`), 0o644))
	_, err = torch.DeviceTimes(path)
	require.ErrorContains(t, err, path)
}

// -train-cases picks the training cases by name, in its order, and names
// an unknown one in its error; without it, -variants adds stage 2's.
func TestTrainCaseList(t *testing.T) {
	b := &bench{h: 576, w: 1024, trainCases: "graph_step, stage1"}
	cases, err := b.trainCaseList(320, 576)
	require.NoError(t, err)
	require.Equal(t, []trainCase{{2, 320, 576, "graph_step"}, {1, 576, 1024, ""}}, cases)
	b.trainCases = "stage2,nope"
	_, err = b.trainCaseList(320, 576)
	require.ErrorContains(t, err, `"nope"`)
	b.trainCases, b.variants = "", true
	cases, err = b.trainCaseList(320, 576)
	require.NoError(t, err)
	require.Len(t, cases, 5)
	require.Equal(t, "graph_step", cases[4].variant)
}

// The class table sums kernels by class over the span and counts the
// time between device events as gaps.
func TestClassTableFromATrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": [
		{"ph": "X", "cat": "kernel", "name": "sm90_xmma_fprop_implicit_gemm_bf16", "ts": 0, "dur": 50},
		{"ph": "X", "cat": "kernel", "name": "nvjet_tst_128x256", "ts": 60, "dur": 20},
		{"ph": "X", "cat": "kernel", "name": "nvjet_tst_128x256", "ts": 80, "dur": 10},
		{"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoD", "ts": 95, "dur": 5}
	]}`), 0o644))
	tr, err := torch.ReadDeviceTrace(path)
	require.NoError(t, err)
	var out bytes.Buffer
	writeClassTable(&out, "case", tr)
	s := out.String()
	require.Contains(t, s, "case: 0.1 ms from the first device event to the last, 4 events")
	require.Regexp(t, `convolution +0\.05 +50\.0% +1\n`, s)
	require.Regexp(t, `gemm +0\.03 +30\.0% +2\n`, s)
	require.Regexp(t, `copy +0\.01 +5\.0% +1\n`, s)
	require.Regexp(t, `gaps +0\.01 +15\.0%\n`, s, "0–50, 60–90 and 95–100 busy of 0–100")
	require.NotContains(t, s, "attention", "classes without kernels are left out")
	require.NotContains(t, s, "overlapped")
}

// -skip leaves out the cases it matches: they are not run and not listed.
func TestSkipCases(t *testing.T) {
	b := &bench{skip: regexp.MustCompile(`pipeline 25|b2`)}
	for _, name := range []string{"pipeline 25 steps cfg", "unet forward b2 [graph]"} {
		require.NoError(t, b.measure(name, func() error {
			t.Fatalf("%s ran", name)
			return nil
		}))
	}
	require.Empty(t, b.results)
	require.False(t, b.skipped("pipeline 1 step"))
	require.False(t, (&bench{}).skipped("anything"))
}
