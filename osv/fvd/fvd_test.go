package fvd

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/torch"
)

// testDevice is where the parity tests run: the CPU here, CUDA in the
// cuda-tagged build (device_cuda_test.go).
var testDevice = "cpu"

func loadFixtureDetector(t *testing.T, x *fixture, opts ...Option) *Detector {
	t.Helper()
	d, err := LoadDetector(x.path("detector.pt"), append([]Option{WithDevice(testDevice)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

func TestLoadDetectorErrors(t *testing.T) {
	x := openFixture(t)
	_, err := LoadDetector(filepath.Join(t.TempDir(), "i3d_torchscript.pt"))
	require.ErrorContains(t, err, "i3d_torchscript.pt")
	require.ErrorIs(t, err, os.ErrNotExist)

	// Another signature: forward(x) alone, and the right arguments
	// returning a tuple.
	_, err = LoadDetector(x.path("other_signature.pt"))
	require.ErrorContains(t, err, "other_signature.pt")
	require.ErrorContains(t, err, "no argument rescale")
	require.ErrorContains(t, err, "return_features")
	_, err = LoadDetector(x.path("tuple_output.pt"))
	require.ErrorContains(t, err, "tuple_output.pt")
	require.ErrorContains(t, err, "not one tensor")

	// Not TorchScript: a pickled state_dict, a safetensors file, bytes.
	for _, name := range []string{"state_dict.pt", "fixture.safetensors"} {
		_, err = LoadDetector(x.path(name))
		require.ErrorContains(t, err, name)
		require.ErrorContains(t, err, "not a TorchScript file")
	}
	junk := filepath.Join(t.TempDir(), "junk.pt")
	require.NoError(t, os.WriteFile(junk, []byte("PK\x03\x04 not really a zip"), 0o644))
	_, err = LoadDetector(junk)
	require.ErrorContains(t, err, "junk.pt")

	_, err = LoadDetector(x.path("detector.pt"), WithBatchSize(0))
	require.Error(t, err)
	_, err = LoadDetector(x.path("detector.pt"), WithDevice("tpu"))
	require.Error(t, err)
}

func TestPreprocessParity(t *testing.T) {
	x := openFixture(t)
	dev, err := torch.ParseDevice(testDevice)
	require.NoError(t, err)
	var worst float64
	for _, set := range []string{"a", "b"} {
		for i, c := range x.clips(t, set) {
			want, shape := x.floats(t, fmt.Sprintf("pre.%s.%d", set, i))
			func() {
				s := torch.NewScope()
				defer s.Close()
				v, err := ClipTensor(s, c, dev)
				require.NoError(t, err)
				p := Preprocess(s, v)
				require.Equal(t, []int64{3, int64(c.Frames), Resolution, Resolution}, p.Shape())
				// The fixture keeps every 28th row and column.
				sub := s.Contiguous(s.Permute(s.Reshape(p, 3, int64(c.Frames), 8, 28, 8, 28), 0, 1, 2, 4, 3, 5))
				sub = s.Slice(s.Slice(sub, 4, 0, 1), 5, 0, 1)
				got, err := s.Contiguous(sub).Float32s()
				require.NoError(t, err)
				require.Len(t, got, len(want))
				require.Equal(t, []int64{3, int64(c.Frames), 8, 8}, shape)
				for j := range want {
					worst = max(worst, math.Abs(float64(got[j])-want[j]))
				}
			}()
		}
	}
	t.Logf("preprocessing: max |Go − reference| %.3g on %s (values in [−1, 1])", worst, testDevice)
	require.LessOrEqual(t, worst, 1e-5)
}

func TestResized(t *testing.T) {
	// The longer side rounds up: 50·(224/36) = 311.1 → 312.
	for _, c := range []struct{ h, w, th, tw int64 }{
		{36, 50, 224, 312}, {32, 48, 224, 336}, {48, 32, 336, 224}, {40, 40, 224, 224}, {576, 1024, 224, 399}, {224, 224, 224, 224},
	} {
		th, tw := resized(c.h, c.w)
		require.Equal(t, []int64{c.th, c.tw}, []int64{th, tw}, "%d×%d", c.h, c.w)
	}
}

func TestFeaturesParity(t *testing.T) {
	x := openFixture(t)
	det := loadFixtureDetector(t, x, WithBatchSize(3)) // batches of 3, 3, 3, 1
	live := torch.Live()
	for _, set := range []string{"a", "b"} {
		want := x.rows(t, "features."+set)
		got, err := det.ClipFeatures(x.clips(t, set))
		require.NoError(t, err)
		e := maxAbs(t, got, want)
		t.Logf("features of set %s: max |Go − reference| %.3g on %s (%d×%d, values up to %.3g)", set, e, testDevice, len(want), len(want[0]), maxAbsValue(want))
		require.LessOrEqual(t, e, 1e-4)
	}
	require.Equal(t, live, torch.Live(), "native tensors left behind")
}

func maxAbsValue(rows [][]float64) float64 {
	var m float64
	for _, r := range rows {
		for _, v := range r {
			m = max(m, math.Abs(v))
		}
	}
	return m
}

// TestFeaturesOfTensors runs the tensor path with clips one by one and as
// a 5-d batch (a Pipeline's layout): the same rows as ClipFeatures.
func TestFeaturesOfTensors(t *testing.T) {
	x := openFixture(t)
	det := loadFixtureDetector(t, x)
	clips := x.clips(t, "a")
	want, err := det.ClipFeatures(clips)
	require.NoError(t, err)

	s := torch.NewScope()
	defer s.Close()
	var videos []*torch.Tensor
	for _, c := range clips[:4] {
		v, err := ClipTensor(s, c, torch.CPU) // moved to the detector's device by Features
		require.NoError(t, err)
		videos = append(videos, v)
	}
	// Two clips of one size as a batch [2, T, 3, H, W].
	same := []*data.Clip{clips[4], {Path: "copy", Frames: clips[4].Frames, Width: clips[4].Width, Height: clips[4].Height, Pixels: clips[4].Pixels}}
	b0, err := ClipTensor(s, same[0], torch.CPU)
	require.NoError(t, err)
	videos = append(videos, s.Reshape(s.Cat(0, b0, b0), 2, b0.Size(0), 3, b0.Size(2), b0.Size(3)))
	got, err := det.Features(videos)
	require.NoError(t, err)
	require.Len(t, got, 6)
	require.LessOrEqual(t, maxAbs(t, got[:5], want[:5]), 1e-5)
	require.LessOrEqual(t, maxAbs(t, got[5:], want[4:5]), 1e-5)

	// Bad input: a wrong shape, 8-bit frames, clips of two lengths, a
	// released tensor.
	_, err = det.Features([]*torch.Tensor{s.Reshape(b0, b0.Size(0), 3, -1)})
	require.ErrorContains(t, err, "shape")
	u8, err := torch.Zeros(s, []int64{4, 3, 8, 8}, torch.Uint8, torch.CPU)
	require.NoError(t, err)
	_, err = det.Features([]*torch.Tensor{u8})
	require.ErrorContains(t, err, "uint8")
	_, err = det.Features([]*torch.Tensor{videos[0], s.Slice(videos[1], 0, 0, 2)})
	require.ErrorContains(t, err, "frames")
	gone := s.Clone(videos[0])
	gone.Free()
	_, err = det.Features([]*torch.Tensor{gone})
	require.Error(t, err)
	_, err = det.ClipFeatures([]*data.Clip{{Path: "short", Frames: 2, Width: 4, Height: 4, Pixels: make([]byte, 10)}})
	require.ErrorContains(t, err, "short")
}

func TestDistanceParity(t *testing.T) {
	x := openFixture(t)
	fa, fb := x.rows(t, "features.a"), x.rows(t, "features.b")
	ga, gb := x.rows(t, "gauss.a"), x.rows(t, "gauss.b")
	la, lb := x.rows(t, "lowrank.a"), x.rows(t, "lowrank.b")
	dev, err := torch.ParseDevice(testDevice)
	require.NoError(t, err)
	for _, c := range []struct {
		key  string
		a, b [][]float64
	}{
		{"fd.ab", fa, fb}, {"fd.ba", fb, fa}, {"fd.a1b", fa[:1], fb}, {"fd.gauss", ga, gb}, {"fd.lowrank", la, lb},
	} {
		want := x.scalar(t, c.key)
		got, err := DistanceOn(dev, c.a, c.b)
		require.NoError(t, err)
		t.Logf("%-10s Go %.12g reference %.12g relative error %.3g (%d and %d rows of %d)", c.key, got, want, relErr(got, want), len(c.a), len(c.b), len(c.a[0]))
		require.LessOrEqual(t, relErr(got, want), 1e-6, c.key)
	}
	// A set against itself: 0 up to rounding, on either side. With 10
	// rows of 400 features, about 390 eigenvalues are 0 but for rounding,
	// and their square roots (√ε‖Σ‖ each) add up to a few 1e-7 here: the
	// reference's own sqrtm gives −1.7e-7.
	self, err := DistanceOn(dev, fa, fa)
	require.NoError(t, err)
	scale := 2 * trace(fa)
	t.Logf("fd.aa      Go %.3g reference %.3g (traces %.3g)", self, x.scalar(t, "fd.aa"), scale)
	require.LessOrEqual(t, math.Abs(self), 1e-5*scale)
	require.LessOrEqual(t, math.Abs(x.scalar(t, "fd.aa")), 1e-5*scale, "the fixture's own self-distance")
}

// TestFVDParity is the whole path: Go's features of the fixture clips,
// then the distance, against the reference's distance of its features.
func TestFVDParity(t *testing.T) {
	x := openFixture(t)
	det := loadFixtureDetector(t, x)
	fa, err := det.ClipFeatures(x.clips(t, "a"))
	require.NoError(t, err)
	fb, err := det.ClipFeatures(x.clips(t, "b"))
	require.NoError(t, err)
	got, err := Distance(fa, fb)
	require.NoError(t, err)
	want := x.scalar(t, "fd.ab")
	t.Logf("FVD of the fixture sets from Go's own features on %s: %.12g, reference %.12g, relative error %.3g", testDevice, got, want, relErr(got, want))
	require.LessOrEqual(t, relErr(got, want), 1e-5)
}

// trace is the trace of the covariance (N − 1) of rows.
func trace(rows [][]float64) float64 {
	d := len(rows[0])
	var tr float64
	for j := range d {
		var mu float64
		for _, r := range rows {
			mu += r[j]
		}
		mu /= float64(len(rows))
		for _, r := range rows {
			tr += (r[j] - mu) * (r[j] - mu)
		}
	}
	return tr / float64(len(rows)-1)
}

// gaussian draws n rows of N(mu, L·Lᵀ·scale²).
func gaussian(r *rand.Rand, n int, mu []float64, l [][]float64, scale float64) [][]float64 {
	d := len(mu)
	out := make([][]float64, n)
	z := make([]float64, d)
	for i := range out {
		for j := range z {
			z[j] = r.NormFloat64()
		}
		row := make([]float64, d)
		for j := range row {
			v := 0.0
			for k := range d {
				v += l[j][k] * z[k]
			}
			row[j] = mu[j] + scale*v
		}
		out[i] = row
	}
	return out
}

// TestDistanceGaussian checks Distance against closed forms: for
// N(μa, Σ) and N(μb, c²Σ) the distance is |μa − μb|² + (1 − c)²·Tr Σ.
func TestDistanceGaussian(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	const d, n = 6, 40000
	l := make([][]float64, d) // a lower-triangular factor: Σ = L Lᵀ, not diagonal
	for i := range l {
		l[i] = make([]float64, d)
		for j := 0; j <= i; j++ {
			l[i][j] = r.NormFloat64() * 0.5
		}
		l[i][i] = 1 + r.Float64()
	}
	var trSigma float64
	for i := range d {
		for j := range d {
			trSigma += l[i][j] * l[i][j]
		}
	}
	muA := []float64{0, 1, 2, 3, 4, 5}
	muB := []float64{1, 1, 1, 3, 3, 3}
	const c = 2.0
	exact := 7 + (1-c)*(1-c)*trSigma // |μa − μb|² = 1 + 0 + 1 + 0 + 1 + 4
	a := gaussian(r, n, muA, l, 1)
	b := gaussian(r, n, muB, l, c)
	got, err := Distance(a, b)
	require.NoError(t, err)
	// Sampling error: the means and covariances are off by about
	// 1/√n of their scale; allow twice that.
	tol := 2 * (1 + c*c) * trSigma / math.Sqrt(n)
	t.Logf("Gaussian sets: FD %.5g, exact %.5g, tolerance %.3g", got, exact, tol)
	require.InDelta(t, exact, got, tol)

	// Symmetric, and 0 for a set against itself, up to rounding.
	back, err := Distance(b, a)
	require.NoError(t, err)
	require.InDelta(t, got, back, 1e-9*got)
	self, err := Distance(a, a)
	require.NoError(t, err)
	require.InDelta(t, 0, self, 1e-9*trSigma)

	// A shifted copy: the covariance terms cancel exactly, the distance
	// is the shift's squared length.
	shift := []float64{0.5, -1, 0, 2, 0, 0.25}
	moved := make([][]float64, len(a))
	for i, row := range a {
		moved[i] = make([]float64, d)
		for j := range row {
			moved[i][j] = row[j] + shift[j]
		}
	}
	got, err = Distance(a, moved)
	require.NoError(t, err)
	require.InDelta(t, 0.25+1+4+0.0625, got, 1e-8)
}

func TestDistanceEdges(t *testing.T) {
	// Fewer than 2 rows: the mean term alone.
	one, err := Distance([][]float64{{1, 2}}, [][]float64{{4, 6}, {4, 8}, {1, 1}})
	require.NoError(t, err)
	require.InDelta(t, 4+9, one, 1e-12) // means (1, 2) and (3, 5)
	one, err = Distance([][]float64{{1, 2}, {3, 2}}, [][]float64{{4, 6}})
	require.NoError(t, err)
	require.InDelta(t, 4+16, one, 1e-12)

	live := torch.Live()
	for _, c := range []struct {
		a, b [][]float64
		msg  string
	}{
		{nil, [][]float64{{1}}, "empty"},
		{[][]float64{{1}}, [][]float64{}, "empty"},
		{[][]float64{{1, 2}}, [][]float64{{1}}, "2 and 1"},
		{[][]float64{{1, 2}, {1}}, [][]float64{{1, 2}}, "row 1"},
		{[][]float64{{1, math.NaN()}}, [][]float64{{1, 2}}, "NaN"},
		{[][]float64{{}}, [][]float64{{}}, "empty rows"},
		{[][]float64{{1}, {2}}, [][]float64{{1}, {math.Inf(1)}}, "+Inf"},
	} {
		_, err := Distance(c.a, c.b)
		require.ErrorContains(t, err, c.msg)
	}
	_, err = Distance([][]float64{{1, 2}, {2, 1}, {0, 0}}, [][]float64{{1, 1}, {2, 2}})
	require.NoError(t, err)
	require.Equal(t, live, torch.Live(), "native tensors left behind")
}

func TestFeatureFiles(t *testing.T) {
	dir := t.TempDir()
	set := &Set{Features: [][]float64{{1, 2.5, -3}, {4, 5, math.Pi}}, Paths: []string{"x.mp4", "y.mp4"}, Skipped: 3}
	path := filepath.Join(dir, "f.safetensors")
	require.NoError(t, SaveFeatures(path, set, map[string]string{"frames": "16"}))
	got, meta, err := LoadFeatures(path)
	require.NoError(t, err)
	require.Equal(t, set, got)
	require.Equal(t, "16", meta["frames"])

	require.Error(t, SaveFeatures(path, &Set{}, nil))
	_, _, err = LoadFeatures(filepath.Join(dir, "none.safetensors"))
	require.Error(t, err)
	_, _, err = LoadFeatures(filepath.Join(fixtureDir(t), "fixture.safetensors"))
	require.ErrorContains(t, err, "features")
}

// TestFileFeatures writes the fixture clips as lossless videos, reads
// them back through ffmpeg and checks the features against the
// reference's, with an unreadable and a short video skipped and counted.
func TestFileFeatures(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (the Makefile installs it)")
	}
	x := openFixture(t)
	det := loadFixtureDetector(t, x, WithBatchSize(4))
	clips := x.clips(t, "a")
	dir := t.TempDir()
	var paths []string
	for i, c := range clips {
		paths = append(paths, writeVideo(t, dir, fmt.Sprintf("%02d.mkv", i), c.Frames, c))
		if i == 2 {
			bad := filepath.Join(dir, "bad.mp4")
			require.NoError(t, os.WriteFile(bad, []byte("not a video"), 0o644))
			paths = append(paths, bad)
		}
	}
	short := *clips[0]
	short.Frames = 2
	short.Pixels = short.Pixels[:2*short.Width*short.Height*3]
	paths = append(paths, writeVideo(t, dir, "short.mkv", 2, &short))

	var reported []string
	var progress [][3]int
	set, err := det.FileFeatures(context.Background(), paths, FileOptions{
		FrameOptions: data.FrameOptions{Frames: clips[0].Frames},
		Report:       func(p string, err error) { reported = append(reported, filepath.Base(p)) },
		Progress:     func(done, skipped, total int) { progress = append(progress, [3]int{done, skipped, total}) },
	})
	require.NoError(t, err)
	require.Equal(t, 2, set.Skipped)
	require.ElementsMatch(t, []string{"bad.mp4", "short.mkv"}, reported)
	require.Len(t, set.Paths, len(clips))
	require.Equal(t, paths[0], set.Paths[0])
	require.NotEmpty(t, progress)
	require.Equal(t, len(paths), progress[len(progress)-1][0])
	want := x.rows(t, "features.a")
	e := maxAbs(t, set.Features, want)
	t.Logf("features from video files: max |Go − reference| %.3g", e)
	require.LessOrEqual(t, e, 1e-4)
}

// writeVideo stores a clip's frames losslessly (FFV1, RGB) with ffmpeg.
func writeVideo(t *testing.T, dir, name string, frames int, c *data.Clip) string {
	t.Helper()
	src := filepath.Join(dir, name+".frames")
	require.NoError(t, os.MkdirAll(src, 0o755))
	for i := range frames {
		ppm := append([]byte("P6\n"+strconv.Itoa(c.Width)+" "+strconv.Itoa(c.Height)+"\n255\n"), c.Frame(i)...)
		require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("%03d.ppm", i)), ppm, 0o644))
	}
	path := filepath.Join(dir, name)
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-framerate", "8", "-i", filepath.Join(src, "%03d.ppm"),
		"-c:v", "ffv1", "-pix_fmt", "rgb24", "-y", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return path
}
