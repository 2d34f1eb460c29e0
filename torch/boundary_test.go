package torch_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// returnsError runs f, which must neither panic nor succeed.
func returnsError(t *testing.T, name string, f func() error) {
	t.Helper()
	var err error
	panicked := func() (p any) {
		defer func() { p = recover() }()
		err = f()
		return nil
	}()
	if panicked != nil {
		t.Errorf("%s panicked instead of returning an error: %v", name, panicked)
		return
	}
	if err == nil {
		t.Errorf("%s returned no error", name)
	}
}

// panicsWithError runs f, which must panic with a *torch.Error: the
// documented behaviour of the Scope operations and the tensor accessors.
func panicsWithError(t *testing.T, name string, f func()) {
	t.Helper()
	r := func() (p any) {
		defer func() { p = recover() }()
		f()
		return nil
	}()
	var e *torch.Error
	if err, ok := r.(error); !ok || !errors.As(err, &e) {
		t.Errorf("%s: want a panic with *torch.Error, got %v", name, r)
	}
}

// Bad input to every function that returns an error comes back as an
// error value: nil and released tensors, closed scopes, bad shapes and
// dtypes, closed generators and optimisers, nil files. Nothing is left
// allocated.
func TestBadInputIsAnError(t *testing.T) {
	start := torch.Live()
	s := torch.NewScope()
	defer s.Close()
	closed := torch.NewScope()
	closed.Close()
	var none *torch.Tensor
	gone, err := torch.Zeros(nil, []int64{2}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	gone.Free()
	x, err := torch.FromFloat32(s, []float32{1, 2}, []int64{2}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	one := []float32{1}
	huge := []int64{1<<62 + 1, 4} // 2^64 + 4 elements: 4 once wrapped around

	for name, f := range map[string]func() error{
		// Tensors in and out.
		"Float32s(nil)":      func() error { _, err := none.Float32s(); return err },
		"Float32s(released)": func() error { _, err := gone.Float32s(); return err },
		"Item(nil)":          func() error { _, err := none.Item(); return err },
		"Item(released)":     func() error { _, err := gone.Item(); return err },
		"Item(two elements)": func() error { _, err := x.Item(); return err },
		"To(nil)":            func() error { _, err := none.To(s, torch.Float16, torch.CPU); return err },
		"To(released)":       func() error { _, err := gone.To(s, torch.Float16, torch.CPU); return err },
		"To(closed scope)":   func() error { _, err := x.To(closed, torch.Float16, torch.CPU); return err },
		"To(bad dtype)":      func() error { _, err := x.To(s, torch.DType(42), torch.CPU); return err },
		"FromFloat32(closed)": func() error {
			_, err := torch.FromFloat32(closed, one, []int64{1}, torch.Float32, torch.CPU)
			return err
		},
		"FromFloat32(negative)": func() error {
			_, err := torch.FromFloat32(s, one, []int64{-1, -1}, torch.Float32, torch.CPU)
			return err
		},
		"FromFloat32(overflow)": func() error {
			_, err := torch.FromFloat32(s, []float32{1, 2, 3, 4}, huge, torch.Float32, torch.CPU)
			return err
		},
		"FromFloat32(length)":    func() error { _, err := torch.FromFloat32(s, one, []int64{2}, torch.Float32, torch.CPU); return err },
		"FromFloat32(bad dtype)": func() error { _, err := torch.FromFloat32(s, one, []int64{1}, torch.DType(42), torch.CPU); return err },
		"FromFloat32(rank 17)":   func() error { _, err := torch.FromFloat32(s, one, make1s(17), torch.Float32, torch.CPU); return err },
		"FromUint8(closed)": func() error {
			_, err := torch.FromUint8(closed, []uint8{1}, []int64{1}, torch.Float32, torch.CPU)
			return err
		},
		"FromUint8(length)": func() error {
			_, err := torch.FromUint8(s, []uint8{1}, []int64{3}, torch.Float32, torch.CPU)
			return err
		},
		"Zeros(closed)":      func() error { _, err := torch.Zeros(closed, []int64{1}, torch.Float32, torch.CPU); return err },
		"Zeros(negative)":    func() error { _, err := torch.Zeros(s, []int64{2, -3}, torch.Float32, torch.CPU); return err },
		"Full(bad dtype)":    func() error { _, err := torch.Full(s, []int64{1}, 1, torch.DType(-3), torch.CPU); return err },
		"Arange(zero step)":  func() error { _, err := torch.Arange(s, 0, 5, 0, torch.Float32, torch.CPU); return err },
		"Arange(wrong sign)": func() error { _, err := torch.Arange(s, 0, 5, -1, torch.Float32, torch.CPU); return err },
		"Arange(closed)":     func() error { _, err := torch.Arange(closed, 0, 5, 1, torch.Float32, torch.CPU); return err },

		// Autograd.
		"SetRequiresGrad(nil)":      func() error { return none.SetRequiresGrad(true) },
		"SetRequiresGrad(released)": func() error { return gone.SetRequiresGrad(true) },
		"Backward(nil)":             func() error { return torch.Backward(none) },
		"Backward(released)":        func() error { return torch.Backward(gone) },
		"Backward(no graph)":        func() error { return torch.Backward(s.Sum(x, false)) },
		"Grad(nil)":                 func() error { _, err := none.Grad(s); return err },
		"ZeroGrad(released)":        func() error { return gone.ZeroGrad() },
		"ZeroGrads(nil)":            func() error { return torch.ZeroGrads([]*torch.Tensor{x, nil}) },

		// Optimisers.
		"NewAdamW(nil)":         func() error { _, err := torch.NewAdamW([]*torch.Tensor{nil}, 1, 0.9, 0.99, 1e-8, 0); return err },
		"NewAdamW(released)":    func() error { _, err := torch.NewAdamW([]*torch.Tensor{gone}, 1, 0.9, 0.99, 1e-8, 0); return err },
		"ClipGradNorm(nil)":     func() error { _, err := torch.ClipGradNorm([]*torch.Tensor{none}, 1); return err },
		"EMA(nil dst)":          func() error { return torch.EMA([]*torch.Tensor{none}, []*torch.Tensor{x}, 0.9) },
		"EMA(released src)":     func() error { return torch.EMA([]*torch.Tensor{x}, []*torch.Tensor{gone}, 0.9) },
		"EMA(lengths)":          func() error { return torch.EMA([]*torch.Tensor{x}, nil, 0.9) },
		"CopyInto(nil, x)":      func() error { return torch.CopyInto(none, x) },
		"CopyInto(x, released)": func() error { return torch.CopyInto(x, gone) },
		"Generator.State(nil)":  func() error { var g *torch.Generator; _, err := g.State(s); return err },
		"Generator.SetState(nil)": func() error {
			var g *torch.Generator
			return g.SetState(x)
		},

		// Checkpoints.
		"ReadTensor(nil file)": func() error { _, err := torch.ReadTensor(s, nil, "w", 0, torch.CPU); return err },
		"LoadFile(missing)":    func() error { _, err := torch.LoadFile(s, filepath.Join(t.TempDir(), "none"), torch.CPU); return err },
		"SaveFile(nil)": func() error {
			return torch.SaveFile(filepath.Join(t.TempDir(), "a"), map[string]*torch.Tensor{"w": nil}, nil)
		},
		"SaveFile(released)": func() error {
			return torch.SaveFile(filepath.Join(t.TempDir(), "a"), map[string]*torch.Tensor{"w": gone}, nil)
		},
		"Params.Load(nil)":     func() error { return torch.NewParams().Load(nil, "model", torch.Float32, torch.CPU) },
		"ToGotorch(nil)":       func() error { _, err := torch.ToGotorch(none); return err },
		"ToGotorch(released)":  func() error { _, err := torch.ToGotorch(gone); return err },
		"FromGotorch(zero)":    func() error { _, err := torch.FromGotorch(s, gotorch.Tensor{}); return err },
		"Timer.Stop(nil)":      func() error { var tm *torch.Timer; _, err := tm.Stop(); return err },
		"SetGroupNormMode(7)":  func() error { return torch.SetGroupNormMode(7) },
		"CUDA(-1).Check":       func() error { return torch.CUDA(-1).Check() },
		"ProcessGroup(nil)":    func() error { var p *torch.ProcessGroup; return p.AllReduceMean([]*torch.Tensor{x}) },
		"GradReducer(nil).Arm": func() error { var r *torch.GradReducer; return r.Arm() },
		"NewModelOptions(bad)": func() error {
			_, err := torch.NewModelOptions("m", []torch.ModelOption{torch.WithDType("int64")})
			return err
		},
		"NewProcessGroup(zero)": func() error { _, err := torch.NewProcessGroup(torch.DistConfig{}); return err },
	} {
		returnsError(t, name, f)
	}

	// A gradient and a gotorch tensor into a closed scope.
	w, err := torch.FromFloat32(s, []float32{1, 2}, []int64{2}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	require.NoError(t, w.SetRequiresGrad(true))
	require.NoError(t, torch.Backward(s.Sum(s.Square(w), false)))
	returnsError(t, "Grad(closed scope)", func() error { _, err := w.Grad(closed); return err })
	g, err := torch.ToGotorch(x)
	require.NoError(t, err)
	returnsError(t, "FromGotorch(closed scope)", func() error { _, err := torch.FromGotorch(closed, g); return err })
	torch.Release(g)

	// Generators: closed, and into a closed scope.
	gen, err := torch.NewGenerator(1)
	require.NoError(t, err)
	returnsError(t, "Randn(closed scope)", func() error { _, err := gen.Randn(closed, []int64{2}, torch.Float32, torch.CPU); return err })
	returnsError(t, "Randn(negative)", func() error { _, err := gen.Randn(s, []int64{-2}, torch.Float32, torch.CPU); return err })
	returnsError(t, "State(closed scope)", func() error { _, err := gen.State(closed); return err })
	returnsError(t, "SetState(released)", func() error { return gen.SetState(gone) })
	returnsError(t, "SetState(not a state)", func() error { return gen.SetState(x) })
	gen.Close()
	returnsError(t, "Rand(closed generator)", func() error { _, err := gen.Rand(s, []int64{2}, torch.Float32, torch.CPU); return err })
	returnsError(t, "State(closed generator)", func() error { _, err := gen.State(s); return err })

	// An optimiser whose parameter goes, and one that is closed.
	p, err := torch.FromFloat32(nil, []float32{1}, []int64{1}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	opt, err := torch.NewAdamW([]*torch.Tensor{p}, 0.1, 0.9, 0.99, 1e-8, 0)
	require.NoError(t, err)
	returnsError(t, "Restore(nil moment)", func() error {
		return opt.Restore(map[string]*torch.Tensor{"exp_avg.0": nil, "exp_avg_sq.0": nil}, 3)
	})
	require.Zero(t, opt.Steps())
	p.Free()
	returnsError(t, "Step(released parameter)", opt.Step)
	require.Zero(t, opt.Steps())
	opt.Close()
	require.Empty(t, opt.State())
	returnsError(t, "Restore(closed)", func() error { return opt.Restore(nil, 1) })
	returnsError(t, "Step(closed)", opt.Step)

	s.Close()
	require.Equal(t, start, torch.Live(), "bad input left tensors allocated")
}

func make1s(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// The process-group methods refuse nil tensors with an error (a world of
// one over Gloo).
func TestProcessGroupBadTensors(t *testing.T) {
	if !torch.DistributedBuilt(torch.Gloo) {
		t.Skip("this build has no c10d/Gloo")
	}
	port, err := torch.FreePort()
	require.NoError(t, err)
	pg, err := torch.NewProcessGroup(torch.DistConfig{Addr: "127.0.0.1", Port: port, World: 1, Timeout: 20 * time.Second})
	require.NoError(t, err)
	defer pg.Close()
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromFloat32(s, []float32{1}, []int64{1}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	returnsError(t, "AllReduceMean(nil)", func() error { return pg.AllReduceMean([]*torch.Tensor{x, nil}) })
	returnsError(t, "Broadcast(nil)", func() error { return pg.Broadcast([]*torch.Tensor{nil}, 0) })
	returnsError(t, "NewGradReducer(nil)", func() error { _, err := pg.NewGradReducer([]*torch.Tensor{nil}); return err })
	returnsError(t, "NewGradReducer(frozen)", func() error { _, err := pg.NewGradReducer([]*torch.Tensor{x}); return err })
	require.NoError(t, pg.AllReduceMean([]*torch.Tensor{x}), "the group still works")
}

// LoadFile that fails part-way frees what it had read, even for the caller.
func TestLoadFileFailureFreesTensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mixed.safetensors")
	require.NoError(t, safetensors.Write(path, []safetensors.Tensor{
		{Name: "a", DType: safetensors.F32, Shape: []int64{2}, Data: make([]byte, 8)},
		{Name: "b", DType: safetensors.U16, Shape: []int64{2}, Data: make([]byte, 4)}, // no engine dtype
	}, nil))
	start := torch.Live()
	m, err := torch.LoadFile(nil, path, torch.CPU)
	require.ErrorContains(t, err, `tensor "b": dtype U16 is not supported`)
	require.Nil(t, m)
	require.Equal(t, start, torch.Live(), "tensor a leaked")
}

// The documented panics: Scope operations and the accessors without an
// error result panic with *torch.Error (never a runtime error), and
// Recover turns them into error values.
func TestScopeOpsPanicWithError(t *testing.T) {
	start := torch.Live()
	s := torch.NewScope()
	x, err := torch.FromFloat32(s, []float32{1, 2, 3, 4}, []int64{2, 2}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	gone, err := torch.Zeros(nil, []int64{2}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	gone.Free()
	var none *torch.Tensor

	panicsWithError(t, "Add(nil)", func() { s.Add(x, none) })
	panicsWithError(t, "Mul(released)", func() { s.Mul(gone, x) })
	panicsWithError(t, "Matmul(shapes)", func() { s.Matmul(x, s.Reshape(x, 4)) })
	panicsWithError(t, "Reshape(count)", func() { s.Reshape(x, 3) })
	panicsWithError(t, "Transpose(range)", func() { s.Transpose(x, 0, 5) })
	panicsWithError(t, "Select(range)", func() { s.Select(x, 3, 0) })
	panicsWithError(t, "Chunk(uneven)", func() { s.Chunk(x, 3, 0) })
	panicsWithError(t, "Chunk(nil)", func() { s.Chunk(none, 2, 0) })
	panicsWithError(t, "Cat(none)", func() { s.Cat(0) })
	panicsWithError(t, "Cast(nil)", func() { s.Cast(none, torch.Float16) })
	panicsWithError(t, "Scalar(nil)", func() { s.Scalar(none, 1) })
	panicsWithError(t, "Filled(negative)", func() { s.Filled(x, 1, -2) })
	panicsWithError(t, "Conv(no stride)", func() { s.Conv(x, x, nil, nil, nil, nil, 1) })
	panicsWithError(t, "Shape(released)", func() { gone.Shape() })
	panicsWithError(t, "Dim(nil)", func() { none.Dim() })
	panicsWithError(t, "Size(range)", func() { x.Size(2) })
	panicsWithError(t, "DType(released)", func() { gone.DType() })
	panicsWithError(t, "Strides(nil)", func() { none.Strides() })
	described, err := torch.Zeros(nil, []int64{3}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	require.Equal(t, []int64{3}, described.Shape())
	described.Free()
	panicsWithError(t, "Shape(described, then released)", func() { described.Shape() })
	child := s.Child()
	y := child.Neg(x)
	s.Close()
	panicsWithError(t, "op in a closed scope", func() { s.Neg(x) })
	panicsWithError(t, "Keep into a closed parent", func() { child.Keep(y) })
	require.True(t, y.Released(), "Keep into a closed parent frees the tensor")
	child.Close()

	err = func() (err error) {
		defer torch.Recover(&err)
		s := torch.NewScope()
		defer s.Close()
		a, _ := torch.Zeros(s, []int64{2, 3}, torch.Float32, torch.CPU)
		s.Add(a, s.Reshape(a, 3, 2))
		return nil
	}()
	var te *torch.Error
	require.ErrorAs(t, err, &te)
	require.Equal(t, "add", te.Op)
	require.Equal(t, start, torch.Live())
}

// Nil scopes mean the caller: Keep and Adopt on one hand the tensor over.
func TestNilScopeIsTheCaller(t *testing.T) {
	start := torch.Live()
	var caller *torch.Scope
	s := torch.NewScope()
	x, err := torch.Zeros(s, []int64{2}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	require.Same(t, x, caller.Keep(x))
	require.Same(t, x, caller.Adopt(x))
	s.Close()
	require.False(t, x.Released(), "Adopt by a nil scope hands the tensor to the caller")
	y := caller.AddScalar(x, 1)
	v, err := y.Float32s()
	require.NoError(t, err)
	require.Equal(t, []float32{1, 1}, v)
	caller.Drop(x, y)
	require.True(t, x.Released())
	require.True(t, y.Released())
	require.Equal(t, start, torch.Live())
}

// Small values that must not panic: an Error without a cause, a nil model
// option, the accessors that are safe on released tensors.
func TestSafeZeroValues(t *testing.T) {
	require.Equal(t, "op: unknown error", (&torch.Error{Op: "op"}).Error())
	o, err := torch.NewModelOptions("m", []torch.ModelOption{nil, torch.WithSeed(3)})
	require.NoError(t, err)
	require.Equal(t, uint64(3), o.Seed)
	var none *torch.Tensor
	require.False(t, none.RequiresGrad())
	require.True(t, none.Released())
	require.Equal(t, "Tensor(released)", none.String())
	none.Free()
	require.Equal(t, "cuda:2", fmt.Sprint(torch.CUDA(2)))
	mode, err := torch.GroupNormModeNow()
	require.NoError(t, err)
	require.Error(t, torch.SetGroupNormMode(-1))
	now, err := torch.GroupNormModeNow()
	require.NoError(t, err)
	require.Equal(t, mode, now, "a refused mode changes nothing")
}
