package torch

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// scriptFixture is a file of the FVD fixture (testdata/fvd): TorchScript
// modules scripted and saved by PyTorch 2.x.
func scriptFixture(name string) string { return filepath.Join("..", "testdata", "fvd", name) }

func TestScriptModule(t *testing.T) {
	live := Live()
	m, err := LoadScriptModule(scriptFixture("detector.pt"), CPU)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, CPU, m.Device())

	sig, err := m.Signature("forward")
	require.NoError(t, err)
	require.Contains(t, sig.Schema, "forward(")
	var names []string
	for _, a := range sig.Args {
		names = append(names, a.Name)
	}
	require.Equal(t, []string{"x", "rescale", "resize", "return_features"}, names)
	a, ok := sig.Arg("return_features")
	require.True(t, ok)
	require.Equal(t, ScriptArg{Name: "return_features", Type: "bool", HasDefault: true, Default: "False"}, a)
	require.Equal(t, []string{"Tensor"}, sig.Returns)
	_, err = m.Signature("backward")
	require.ErrorContains(t, err, "no method \"backward\"")

	s := NewScope()
	defer s.Close()
	g, err := NewGenerator(3)
	require.NoError(t, err)
	defer g.Close()
	x, err := g.Rand(s, []int64{2, 3, 4, 32, 32}, Float32, CPU)
	require.NoError(t, err)
	// Keyword arguments, and the same call by position: the same result;
	// the softmax path (return_features false) sums to 1 per row.
	kw, err := m.Call(s, "forward", []*Tensor{x}, map[string]any{"rescale": false, "resize": false, "return_features": true})
	require.NoError(t, err)
	require.Equal(t, []int64{2, 400}, kw.Shape())
	probs, err := m.Call(s, "forward", []*Tensor{x}, map[string]any{"rescale": false, "resize": false})
	require.NoError(t, err)
	p := vals(t, s.Sum(probs, false, 1))
	require.InDelta(t, 1, p[0], 1e-5)
	require.False(t, kw.RequiresGrad())

	// Bad calls are errors, not crashes: an unknown keyword, a wrong type,
	// an input the module rejects, a non-tensor keyword value.
	_, err = m.Call(s, "forward", []*Tensor{x}, map[string]any{"scale": true})
	require.ErrorContains(t, err, "scale")
	_, err = m.Call(s, "forward", []*Tensor{x}, map[string]any{"rescale": 1.5})
	require.Error(t, err)
	bad, err := g.Rand(s, []int64{2, 5, 4, 8, 8}, Float32, CPU)
	require.NoError(t, err)
	_, err = m.Call(s, "forward", []*Tensor{bad}, nil)
	require.ErrorContains(t, err, "detector.pt")
	_, err = m.Call(s, "forward", []*Tensor{x}, map[string]any{"rescale": "no"})
	require.ErrorContains(t, err, "string")
	_, err = m.Call(s, "forward", nil, nil)
	require.Error(t, err)
	gone := s.Clone(x)
	gone.Free()
	_, err = m.Call(s, "forward", []*Tensor{gone}, nil)
	require.Error(t, err)

	tuple, err := LoadScriptModule(scriptFixture("tuple_output.pt"), CPU)
	require.NoError(t, err)
	defer tuple.Close()
	_, err = tuple.Call(s, "forward", []*Tensor{x}, nil)
	require.ErrorContains(t, err, "not a Tensor")

	for _, name := range []string{"state_dict.pt", "fixture.safetensors", "missing.pt"} {
		_, err = LoadScriptModule(scriptFixture(name), CPU)
		require.ErrorContains(t, err, name)
	}
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	_, err = m.Call(s, "forward", []*Tensor{x}, nil)
	require.ErrorContains(t, err, "closed")
	s.Close()
	require.Equal(t, live, Live())
}

func TestEigH(t *testing.T) {
	s := NewScope()
	defer s.Close()
	// [[2, 1], [1, 2]]: eigenvalues 1 and 3.
	a, err := FromFloat64(s, []float64{2, 1, 1, 2}, []int64{2, 2}, Float64, CPU)
	require.NoError(t, err)
	w, v := s.EigH(a)
	got, err := w.Float64s()
	require.NoError(t, err)
	require.InDeltaSlice(t, []float64{1, 3}, got, 1e-12)
	// A V = V diag(w).
	av, err := s.Matmul(a, v).Float64s()
	require.NoError(t, err)
	vw, err := s.Mul(v, w).Float64s()
	require.NoError(t, err)
	require.InDeltaSlice(t, vw, av, 1e-12)
	only, err := s.EigvalsH(a).Float64s()
	require.NoError(t, err)
	require.InDeltaSlice(t, got, only, 1e-12)
	require.Equal(t, math.Float64bits(1e-300), math.Float64bits(mustFloat64s(t, s, 1e-300)[0]), "float64 round trip")

	rect, err := Zeros(s, []int64{2, 3}, Float64, CPU)
	require.NoError(t, err)
	var perr error
	func() {
		defer Recover(&perr)
		s.EigH(rect)
	}()
	require.ErrorContains(t, perr, "square")
	_, err = FromFloat64(s, []float64{1}, []int64{2}, Float64, CPU)
	require.Error(t, err)
}

func mustFloat64s(t *testing.T, s *Scope, v float64) []float64 {
	x, err := FromFloat64(s, []float64{v}, []int64{1}, Float64, CPU)
	require.NoError(t, err)
	out, err := x.Float64s()
	require.NoError(t, err)
	return out
}
