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

// ReadDeviceTrace's timeline counts overlapping events once and the time
// between them as gaps.
func TestReadDeviceTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": [
		{"ph": "X", "cat": "kernel", "name": "b", "ts": 110, "dur": 5},
		{"ph": "X", "cat": "kernel", "name": "a", "ts": 100, "dur": 4},
		{"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": 102, "dur": 4},
		{"ph": "X", "cat": "kernel", "name": "b", "ts": 112, "dur": 1},
		{"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 0, "dur": 500}
	]}`), 0o644))
	tr, err := ReadDeviceTrace(path)
	require.NoError(t, err)
	require.Equal(t, 4, tr.Events)
	require.InDelta(t, 15, tr.SpanUS, 1e-9, "100 to 115")
	require.InDelta(t, 11, tr.BusyUS, 1e-9, "100–106 and 110–115")
	require.InDelta(t, 4, tr.GapUS(), 1e-9)
	require.Equal(t, []DeviceTime{{"b", "kernel", 2, 6}, {"Memcpy HtoD", "gpu_memcpy", 1, 4}, {"a", "kernel", 1, 4}}, tr.Times, "ties by name")

	require.NoError(t, os.WriteFile(path, []byte(`{"traceEvents": []}`), 0o644))
	tr, err = ReadDeviceTrace(path)
	require.NoError(t, err)
	require.Zero(t, tr.Events)
	require.Zero(t, tr.SpanUS)
	require.NoError(t, os.WriteFile(path, []byte(`not json`), 0o644))
	_, err = ReadDeviceTrace(path)
	require.ErrorContains(t, err, "trace.json")
}

// KernelClass sorts the kernel names libtorch, cuDNN and cuBLAS use on
// Hopper, and the bridge's own.
func TestKernelClass(t *testing.T) {
	for name, want := range map[string]string{
		"sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64":                   ClassConvolution,
		"sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc":                                      ClassConvolution,
		"nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN":                                                             ClassGEMM,
		"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1":                        ClassGEMM,
		"fmha_cutlassF_bf16_aligned_64x128_rf_sm80(PyTorchMemEffAttention::AttentionKernel)":                    ClassAttention,
		"cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0": ClassAttention,
		"void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>":                                ClassAttention,
		"void (anonymous namespace)::cunn_SoftMaxForward<4, float, float, float>":                               ClassAttention,
		"void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>":                    ClassNorm,
		"void at::native::GammaBetaBackwardCUDAKernel<float, float>":                                            ClassNorm,
		"void stats_cl_kernel<__nv_bfloat16>(__nv_bfloat16 const*, float*, int, int)":                           ClassNorm,
		"void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>":                 ClassElementwise,
		"void elementwise_cl_kernel<__nv_bfloat16, true>":                                                       ClassElementwise,
		"void at::native::elementwise_kernel<128, 4, at::native::direct_copy_kernel_cuda>":                      ClassCopy,
		"void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::NormTwoOps>>":           ClassReduction,
		"void nchwToNhwcKernel<__nv_bfloat16>":                                                                  ClassCopy,
		"some_new_kernel":                                                                                       ClassOther,
	} {
		require.Equal(t, want, KernelClass(DeviceTime{Name: name, Category: "kernel"}), name)
	}
	require.Equal(t, ClassCopy, KernelClass(DeviceTime{Name: "Memcpy DtoD (Device -> Device)", Category: "gpu_memcpy"}))
	require.Equal(t, ClassCopy, KernelClass(DeviceTime{Name: "Memset (Device)", Category: "gpu_memset"}))
}
