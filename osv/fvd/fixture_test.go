package fvd

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// fixtureDir is the FVD fixture folder: $OSV_FIXTURES/fvd when it exists,
// otherwise the copy in testdata/fvd (made by testdata/fvd/make_fixture.py).
func fixtureDir(t testing.TB) string {
	if r := os.Getenv("OSV_FIXTURES"); r != "" {
		if st, err := os.Stat(filepath.Join(r, "fvd")); err == nil && st.IsDir() {
			return filepath.Join(r, "fvd")
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fvd")
}

// fixture is the parsed fixture.safetensors.
type fixture struct {
	f   *safetensors.File
	dir string
}

func openFixture(t testing.TB) *fixture {
	t.Helper()
	dir := fixtureDir(t)
	f, err := safetensors.Open(filepath.Join(dir, "fixture.safetensors"))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return &fixture{f: f, dir: dir}
}

func (x *fixture) path(name string) string { return filepath.Join(x.dir, name) }

// floats reads a float32 or float64 tensor as float64 values and its shape.
func (x *fixture) floats(t testing.TB, name string) ([]float64, []int64) {
	t.Helper()
	info, ok := x.f.Info(name)
	require.True(t, ok, "fixture has no %s", name)
	b, err := x.f.Bytes(name)
	require.NoError(t, err)
	var out []float64
	switch info.DType {
	case "F32":
		for i := 0; i+4 <= len(b); i += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))))
		}
	case "F64":
		for i := 0; i+8 <= len(b); i += 8 {
			out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
		}
	default:
		t.Fatalf("%s: dtype %s", name, info.DType)
	}
	return out, info.Shape
}

// rows reads a 2-d tensor as rows.
func (x *fixture) rows(t testing.TB, name string) [][]float64 {
	t.Helper()
	v, sh := x.floats(t, name)
	require.Len(t, sh, 2, name)
	out := make([][]float64, sh[0])
	for i := range out {
		out[i] = v[int64(i)*sh[1] : int64(i+1)*sh[1]]
	}
	return out
}

// scalar reads a one-element tensor.
func (x *fixture) scalar(t testing.TB, name string) float64 {
	t.Helper()
	v, _ := x.floats(t, name)
	require.Len(t, v, 1, name)
	return v[0]
}

// clips reads the clips of a set ("a" or "b") as osv/data decodes them.
func (x *fixture) clips(t testing.TB, set string) []*data.Clip {
	t.Helper()
	var out []*data.Clip
	for i := 0; ; i++ {
		name := "clips." + set + "." + strconv.Itoa(i)
		info, ok := x.f.Info(name)
		if !ok {
			break
		}
		require.Equal(t, safetensors.DType("U8"), info.DType)
		require.Len(t, info.Shape, 4)
		b, err := x.f.Bytes(name)
		require.NoError(t, err)
		out = append(out, &data.Clip{Path: name, Frames: int(info.Shape[0]), Height: int(info.Shape[1]), Width: int(info.Shape[2]),
			Pixels: append([]byte(nil), b...)})
	}
	require.NotEmpty(t, out, "fixture has no clips of set %s", set)
	return out
}

// maxAbs is the largest |got − want| over two row sets of one shape.
func maxAbs(t testing.TB, got, want [][]float64) float64 {
	t.Helper()
	require.Len(t, got, len(want))
	var m float64
	for i := range want {
		require.Len(t, got[i], len(want[i]))
		for j := range want[i] {
			m = max(m, math.Abs(got[i][j]-want[i][j]))
		}
	}
	return m
}

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }
