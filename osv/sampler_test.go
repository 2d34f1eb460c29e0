package osv

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv/media"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// samplerCases are the built-in samplers, with the step count each should
// take by default.
var samplerCases = []struct {
	name    string
	sampler Sampler
	steps   int
}{
	{"euler", EulerSampler{}, 25},
	{"consistency-osv", ConsistencySampler{}, 4},
	{"consistency-animatelcm", ConsistencySampler{Schedule: AnimateLCMSchedule()}, 4},
	{"tts", TTSSampler{}, 1},
	{"tts-fresh", TTSSampler{FreshNoise: true}, 1},
}

// TestGenerateWithEachSampler checks, for every sampler through Generate:
// its default step count, determinism by seed, and that no native tensor
// outlives the call.
func TestGenerateWithEachSampler(t *testing.T) {
	c := readCase(t)
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer p.Close()
	img, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	for _, sc := range samplerCases {
		t.Run(sc.name, func(t *testing.T) {
			start := torch.Live()
			o := c.options()
			o.Sampler, o.NumInferenceSteps, o.MinGuidanceScale, o.MaxGuidanceScale = sc.sampler, 0, 0, 0
			o.Seed = 5
			if sc.steps > 4 {
				o.NumInferenceSteps = 3 // the Euler default is slow to check; its count is below
			}
			calls := 0
			o.Progress = func(step, total int) { calls++ }
			v, err := p.Generate(context.Background(), img, o)
			require.NoError(t, err)
			if o.NumInferenceSteps == 0 {
				require.Equal(t, sc.steps, calls, "progress calls with the default step count")
			}
			again, err := p.Generate(context.Background(), img, o)
			require.NoError(t, err)
			s := torch.NewScope()
			a, _ := torch.FromGotorch(s, v.Tensor)
			b, _ := torch.FromGotorch(s, again.Tensor)
			require.Zero(t, relErr(t, b, a), "same seed, another video")
			s.Close()
			Release(v.Tensor, again.Tensor)
			require.Equal(t, start, torch.Live(), "native tensors left by Generate")
		})
	}
	steps, _, _ := EulerSampler{}.Defaults()
	require.Equal(t, 25, steps)
}

// TestSamplersDiffer guards against samplers that silently run another's
// code: on the same noise each gives its own latents.
func TestSamplersDiffer(t *testing.T) {
	c := readCase(t)
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer p.Close()
	img, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	s := torch.NewScope()
	defer s.Close()
	var outs []*torch.Tensor
	for _, sc := range samplerCases {
		o := c.options()
		o.Sampler, o.NumInferenceSteps, o.MinGuidanceScale, o.MaxGuidanceScale, o.Seed = sc.sampler, 2, 1, 1, 9
		v, err := p.Generate(context.Background(), img, o)
		require.NoError(t, err)
		x, err := torch.FromGotorch(s, v.Tensor)
		require.NoError(t, err)
		outs = append(outs, s.Clone(x))
		Release(v.Tensor)
	}
	for i := range outs {
		for j := i + 1; j < len(outs); j++ {
			require.Greater(t, relErr(t, outs[j], outs[i]), 1e-4, "%s and %s gave the same video", samplerCases[i].name, samplerCases[j].name)
		}
	}
}

func TestTTSLevels(t *testing.T) {
	// One step: σ_max, then the middle level of the 3-level schedule (the
	// two-step sampler's second level).
	steps, travel, err := TTSSampler{}.Levels(1)
	require.NoError(t, err)
	k := solver.KarrasSigmas(3, 0.002, 700, 7)
	require.Equal(t, []float64{float64(float32(k[0]))}, steps)
	require.Equal(t, []float64{float64(float32(k[1]))}, travel)
	steps, travel, err = TTSSampler{SigmaMin: 0.01, SigmaMax: 80, Rho: 3}.Levels(3)
	require.NoError(t, err)
	k = solver.KarrasSigmas(5, 0.01, 80, 3)
	require.Len(t, steps, 3)
	require.Len(t, travel, 3)
	for i := range steps {
		require.InDelta(t, k[i], steps[i], 1e-6*k[i])
		require.InDelta(t, k[i+1], travel[i], 1e-6*k[i+1])
	}
	_, _, err = TTSSampler{SigmaMin: 5, SigmaMax: 1}.Levels(1)
	require.ErrorContains(t, err, "σ_min < σ_max")
	_, _, err = TTSSampler{}.Levels(0)
	require.ErrorContains(t, err, "0 steps")
}

func TestConsistencySchedule(t *testing.T) {
	// AnimateLCM-SVD's rule: N steps at levels i·⌊40/N⌋ of the 40.
	sc := AnimateLCMSchedule()
	grid := solver.KarrasSigmas(40, 0.002, 700, 7)
	got, err := sc.Sigmas(4)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, g := range got {
		require.InDelta(t, grid[i*10], g, 1e-6*grid[i*10], "step %d", i)
	}
	one, err := sc.Sigmas(1)
	require.NoError(t, err)
	require.InDelta(t, 700, one[0], 1e-4)
	require.InDelta(t, 700.0007142853, sc.InitSigma(700), 1e-6)
	require.Equal(t, 700.0, OSVSchedule().InitSigma(700))
	_, err = sc.Sigmas(41)
	require.ErrorContains(t, err, "41 steps")
	_, err = ConsistencySchedule{Levels: 10, SigmaMin: 1, SigmaMax: 1, Rho: 7}.Sigmas(2)
	require.ErrorContains(t, err, "σ range")
}

// TestGenerateConcurrent runs Generate from several goroutines at once (run
// it under -race: make test does) and compares every result with the same
// call made alone.
func TestGenerateConcurrent(t *testing.T) {
	c := readCase(t)
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer p.Close()
	img, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	start := torch.Live()
	opts := func(i int) GenerateOptions {
		o := c.options()
		o.Sampler = samplerCases[i%len(samplerCases)].sampler
		o.NumInferenceSteps, o.Seed = 2, uint64(100+i)
		return o
	}
	const n = 6
	serial := make([][]float32, n)
	for i := range n {
		v, err := p.Generate(context.Background(), img, opts(i))
		require.NoError(t, err)
		serial[i] = floats(t, v)
	}
	concurrent := make([][]float32, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := p.Generate(context.Background(), img, opts(i))
			if errs[i] = err; err == nil {
				concurrent[i] = floats(t, v)
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "call %d", i)
		require.Equal(t, serial[i], concurrent[i], "call %d differs from the same call made alone", i)
	}
	// A call waiting for its turn gives up with its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Generate(ctx, img, opts(0))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, start, torch.Live())
}

func floats(t *testing.T, v *Video) []float32 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, v.Tensor)
	require.NoError(t, err)
	f, err := x.Float32s()
	require.NoError(t, err)
	Release(v.Tensor)
	return f
}

// TestGenerateRefusesSizesThatCannotFit checks the size guard: the error
// names the size and the memory, and comes before anything is allocated.
func TestGenerateRefusesSizesThatCannotFit(t *testing.T) {
	p, err := LoadPipeline(fixture.Path("pipeline"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer p.Close()
	img, err := media.LoadImage(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	start := torch.Live()
	o := GenerateOptions{Width: 65536, Height: 65536, NumFrames: 14, NumInferenceSteps: 1}
	host, dev := p.MemoryEstimate(o)
	require.Greater(t, host, int64(14)*65536*65536*16-1, "the frames alone need 16 bytes a pixel on the host")
	require.Greater(t, dev, int64(0))
	if avail, ok := availableMemory(); ok {
		require.Less(t, avail, host, "this machine could hold the frames: the check below would not run")
		_, err = p.Generate(context.Background(), img, o)
		require.ErrorContains(t, err, "65536×65536 with 14 frames needs at least")
		require.ErrorContains(t, err, "GiB")
	}
	// With the available memory pinned, a size just over it is refused and
	// one under it runs.
	saved := availableMemory
	defer func() { availableMemory = saved }()
	small := GenerateOptions{Width: 128, Height: 64, NumFrames: 3, NumInferenceSteps: 1, Sampler: TTSSampler{}}
	h, d := p.MemoryEstimate(small)
	need := h // on a GPU the device's part is the device's own memory
	if !testDevice.CUDA {
		need += d
	}
	availableMemory = func() (int64, bool) { return need - 1, true }
	_, err = p.Generate(context.Background(), img, small)
	require.ErrorContains(t, err, fmt.Sprintf("%d×%d with %d frames", 128, 64, 3))
	availableMemory = func() (int64, bool) { return need, true }
	v, err := p.Generate(context.Background(), img, small)
	require.NoError(t, err)
	Release(v.Tensor)
	require.Equal(t, start, torch.Live())
}
