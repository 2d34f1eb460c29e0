package torch

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// capturableTol is the relative tolerance between the device-scalar paths
// and the host-scalar ones: the learning rate, bias corrections and clip
// factor are float32 on the device, float64 on the host.
func capturableTol(dev Device) float64 {
	if dev.CUDA {
		return 1e-5
	}
	return 2e-6
}

// AdamW with Capturable, fed by ClipGradNormDevice and a learning-rate
// schedule through SetLR, follows the host path: the same parameters and
// moments after six steps with norms above and below the limit, weight
// decay, and a parameter without a gradient at one step.
func TestCapturableAdamWMatchesPlain(t *testing.T) {
	dev := fusedDevice()
	plain, dvc := foreachParams(t, dev, 5), foreachParams(t, dev, 5)
	a, err := NewAdamW(plain, 0.05, 0.9, 0.99, 1e-8, 0.01)
	require.NoError(t, err)
	defer a.Close()
	b, err := NewAdamW(dvc, 0.05, 0.9, 0.99, 1e-8, 0.01)
	require.NoError(t, err)
	defer b.Close()
	b.Capturable = true
	tol := capturableTol(dev)
	for step := 1; step <= 6; step++ {
		lr := 0.05 * (1 - 0.1*float64(step))
		a.LR = lr
		require.NoError(t, b.SetLR(lr))
		scale := []float64{1, 50, 0.001}[step%3]
		gradsOf(t, plain, scale)
		gradsOf(t, dvc, scale)
		if step == 4 {
			require.NoError(t, plain[2].ZeroGrad())
			require.NoError(t, dvc[2].ZeroGrad())
		}
		n1, err := ClipGradNorm(plain, 1)
		require.NoError(t, err)
		s := NewScope()
		n2, err := ClipGradNormDevice(s, dvc, 1)
		require.NoError(t, err)
		require.Equal(t, dev, n2.Device())
		v, err := n2.Item()
		require.NoError(t, err)
		require.InDelta(t, n1, v, 1e-6*n1, "step %d: the norm", step)
		b.SkipUnlessFinite = n2
		require.NoError(t, a.Step())
		require.NoError(t, b.Step())
		s.Close()
		b.SkipUnlessFinite = nil
		for i := range plain {
			x, y := float64s(t, plain[i]), float64s(t, dvc[i])
			for j := range x {
				require.InDelta(t, x[j], y[j], tol*(1+math.Abs(x[j])), "step %d, parameter %d, value %d", step, i, j)
			}
		}
	}
	require.Equal(t, int64(6), b.Steps())
	for name, m := range a.State() {
		x, y := float64s(t, m), float64s(t, b.State()[name])
		for j := range x {
			require.InDelta(t, x[j], y[j], tol*(1e-3+math.Abs(x[j])), "%s[%d]", name, j)
		}
	}
}

// A non-finite norm given as SkipUnlessFinite leaves the parameters and
// moments as they were; the step count advances. The clip's factor is then
// 0. Changing LR without SetLR is refused, and Restore sets the device's
// step counters.
func TestCapturableAdamWSkipsAndRefuses(t *testing.T) {
	dev := fusedDevice()
	ps := foreachParams(t, dev, 3)
	o, err := NewAdamW(ps, 0.1, 0.9, 0.99, 1e-8, 0)
	require.NoError(t, err)
	defer o.Close()
	o.Capturable = true
	gradsOf(t, ps, 1)
	require.NoError(t, o.Step())
	before := float64s(t, ps[1])
	moment := float64s(t, o.State()["exp_avg.1"])
	gradsOf(t, ps, math.Inf(1))
	s := NewScope()
	defer s.Close()
	n, err := ClipGradNormDevice(s, ps, 1)
	require.NoError(t, err)
	v, err := n.Item()
	require.NoError(t, err)
	require.False(t, Finite(v), "norm %g", v)
	o.SkipUnlessFinite = n
	require.NoError(t, o.Step())
	require.Equal(t, before, float64s(t, ps[1]), "a non-finite norm: no update")
	require.Equal(t, moment, float64s(t, o.State()["exp_avg.1"]), "a non-finite norm: moments unchanged")
	require.Equal(t, int64(2), o.Steps())

	o.SkipUnlessFinite = nil
	o.LR = 0.5
	require.ErrorContains(t, o.Step(), "SetLR")
	require.NoError(t, o.SetLR(0.5))
	gradsOf(t, ps, 1)
	require.NoError(t, o.Step())
	require.Equal(t, int64(3), o.Steps())
	require.NoError(t, o.Restore(o.State(), 40))
	require.Equal(t, int64(40), o.Steps())

	_, err = ClipGradNormDevice(s, nil, 1)
	require.ErrorContains(t, err, "clip_grad_norm")
	o.Close()
	require.ErrorContains(t, o.Step(), "closed")
	require.ErrorContains(t, o.SetLR(0.1), "closed")
}

// The device clip scales like the host one: the same gradients above the
// limit, and none changed below it.
func TestClipGradNormDeviceMatches(t *testing.T) {
	dev := fusedDevice()
	for _, scale := range []float64{50, 0.001} {
		plain, dvc := foreachParams(t, dev, 8), foreachParams(t, dev, 8)
		gradsOf(t, plain, scale)
		gradsOf(t, dvc, scale)
		_, err := ClipGradNorm(plain, 1)
		require.NoError(t, err)
		s := NewScope()
		_, err = ClipGradNormDevice(s, dvc, 1)
		require.NoError(t, err)
		for i := range plain {
			gx, err := plain[i].Grad(s)
			require.NoError(t, err)
			gy, err := dvc[i].Grad(s)
			require.NoError(t, err)
			x, y := float64s(t, gx), float64s(t, gy)
			for j := range x {
				require.InDelta(t, x[j], y[j], 1e-6*(1e-3+math.Abs(x[j])), "scale %g, parameter %d, value %d", scale, i, j)
			}
		}
		s.Close()
	}
}

// A device generator draws on its device: on the CPU, the CPU generator's
// numbers; a seed repeats its numbers and another seed does not.
func TestDeviceGenerator(t *testing.T) {
	dev := fusedDevice()
	draw := func(seed uint64) []float64 {
		g, err := NewDeviceGenerator(seed, dev)
		require.NoError(t, err)
		defer g.Close()
		x, err := g.Randn(nil, []int64{4096}, Float32, dev)
		require.NoError(t, err)
		defer x.Free()
		require.Equal(t, dev, x.Device())
		return float64s(t, x)
	}
	a, b, c := draw(11), draw(11), draw(12)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
	var mean, sq float64
	for _, v := range a {
		mean += v / float64(len(a))
		sq += v * v / float64(len(a))
	}
	require.InDelta(t, 0, mean, 0.06)
	require.InDelta(t, 1, sq-mean*mean, 0.08)
	if !dev.CUDA {
		cpu, err := NewGenerator(11)
		require.NoError(t, err)
		defer cpu.Close()
		x, err := cpu.Randn(nil, []int64{4096}, Float32, CPU)
		require.NoError(t, err)
		defer x.Free()
		require.Equal(t, float64s(t, x), a)
		if cb.CUDADeviceCount() == 0 {
			_, err := NewDeviceGenerator(1, CUDA(0))
			require.ErrorContains(t, err, "cuda:0")
		}
	}
}

// CaptureGraph refuses what it cannot record: the CPU, no warmup, no body.
func TestCaptureGraphRefuses(t *testing.T) {
	_, err := CaptureGraph(CPU, 1, func(*Scope) error { return nil })
	require.ErrorContains(t, err, "CUDA device")
	_, err = CaptureGraph(CUDA(0), 0, func(*Scope) error { return nil })
	require.ErrorContains(t, err, "warmup")
	_, err = CaptureGraph(CUDA(0), 1, nil)
	require.ErrorContains(t, err, "nil body")
	if cb.CUDADeviceCount() == 0 {
		_, err = CaptureGraph(CUDA(0), 1, func(*Scope) error { return nil })
		require.Error(t, err)
	}
	var g *Graph
	require.ErrorContains(t, g.Replay(), "closed")
	g.Close()
}

// EMADevice with weight 1 − decay is EMA's update to the bit; weight 0
// leaves dst alone.
func TestEMADeviceMatchesEMA(t *testing.T) {
	dev := fusedDevice()
	a, b, src := foreachParams(t, dev, 1), foreachParams(t, dev, 1), foreachParams(t, dev, 2)
	require.NoError(t, EMA(a, src, 0.95))
	w, err := Full(nil, []int64{1}, 1-0.95, Float32, dev)
	require.NoError(t, err)
	defer w.Free()
	require.NoError(t, EMADevice(b, src, w))
	for i := range a {
		require.Equal(t, float64s(t, a[i]), float64s(t, b[i]), "tensor %d", i)
	}
	zero, err := Full(nil, []int64{}, 0, Float32, dev)
	require.NoError(t, err)
	defer zero.Free()
	before := float64s(t, b[1])
	require.NoError(t, EMADevice(b, src, zero))
	require.Equal(t, before, float64s(t, b[1]))
	require.ErrorContains(t, EMADevice(b, src[:2], zero), "ema")
	two, err := Full(nil, []int64{2}, 0, Float32, dev)
	require.NoError(t, err)
	defer two.Free()
	require.ErrorContains(t, EMADevice(b, src, two), "one element")
}

// The scalar comparisons give bool tensors, false at NaN.
func TestScalarComparisons(t *testing.T) {
	s := NewScope()
	defer s.Close()
	x, err := FromFloat32(s, []float32{-1, 0.5, 2, float32(math.NaN()), float32(math.Inf(1))}, []int64{5}, Float32, CPU)
	require.NoError(t, err)
	lt, gt := s.Cast(s.LessScalar(x, 1), Float32), s.Cast(s.GreaterScalar(x, 1), Float32)
	require.Equal(t, []float64{1, 1, 0, 0, 0}, float64s(t, lt))
	require.Equal(t, []float64{0, 0, 1, 0, 1}, float64s(t, gt))
	require.Equal(t, Bool, s.LessScalar(x, 1).DType())
}
