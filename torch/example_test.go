package torch_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// A scope owns every tensor made with it; Float32s copies values back into
// Go memory.
func ExampleScope() {
	s := torch.NewScope()
	defer s.Close() // releases x, y and every intermediate

	x, err := torch.FromFloat32(s, []float32{1, 2, 3, 4, 5, 6}, []int64{2, 3}, torch.Float32, torch.CPU)
	if err != nil {
		fmt.Println(err)
		return
	}
	y := s.Sum(s.AddScalar(s.MulScalar(x, 2), 1), false, 1) // row sums of 2x+1
	v, err := y.Float32s()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(y.Shape(), v)
	// Output: [2] [15 33]
}

// A child scope's intermediates go at its Close; Keep moves the result
// out to the parent.
func ExampleScope_Keep() {
	s := torch.NewScope()
	defer s.Close()
	x, _ := torch.Full(s, []int64{3}, 2, torch.Float32, torch.CPU)

	layer := func(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
		c := s.Child()
		defer c.Close()
		h := c.Square(x)           // dies with c
		return c.Keep(c.Add(h, x)) // moves to s
	}
	out := layer(s, x)
	v, _ := out.Float32s()
	fmt.Println(v, out.Released())
	// Output: [6 6 6] false
}

// The gradient of f(w) = Σ w² is 2w; one AdamW step then moves every
// weight against its gradient by about the learning rate.
func ExampleBackward() {
	w, err := torch.FromFloat32(nil, []float32{1, -2, 3}, []int64{3}, torch.Float32, torch.CPU)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Free() // made with a nil scope: the caller's
	if err := w.SetRequiresGrad(true); err != nil {
		fmt.Println(err)
		return
	}
	opt, err := torch.NewAdamW([]*torch.Tensor{w}, 0.1, 0.9, 0.999, 1e-8, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer opt.Close()

	step := func() (err error) {
		defer torch.Recover(&err)
		s := torch.NewScope()
		defer s.Close()
		loss := s.Sum(s.Square(w), false)
		if err := torch.Backward(loss); err != nil {
			return err
		}
		g, err := w.Grad(s)
		if err != nil {
			return err
		}
		gv, _ := g.Float32s()
		fmt.Println("grad:", gv)
		return opt.Step()
	}
	if err := step(); err != nil {
		fmt.Println(err)
		return
	}
	v, _ := w.Float32s()
	fmt.Printf("after one step: %.3f %.3f %.3f\n", v[0], v[1], v[2])
	// Output:
	// grad: [2 -4 6]
	// after one step: 0.900 -1.900 2.900
}

// Recover, deferred at an entry point, turns the panic of a Scope
// operation into an error; Annotate names the layer it came from.
func ExampleRecover() {
	forward := func() (err error) {
		defer torch.Recover(&err)
		s := torch.NewScope()
		defer s.Close()
		a, _ := torch.Zeros(s, []int64{2, 3}, torch.Float32, torch.CPU)
		b, _ := torch.Zeros(s, []int64{2, 3}, torch.Float32, torch.CPU)
		func() {
			defer torch.Annotate("proj")
			s.Matmul(a, b) // [2, 3] × [2, 3]: the inner sizes differ
		}()
		return nil
	}
	err := forward()
	var te *torch.Error
	fmt.Println(errors.As(err, &te), te.Path, te.Op)
	// The rest of the message is libtorch's own.
	fmt.Println(strings.Join(strings.SplitN(err.Error(), ": ", 3)[:2], ": "))
	// Output:
	// true proj matmul
	// proj: matmul
}

// SaveFile writes tensors and metadata to a safetensors file; LoadFile
// reads them back, and package safetensors reads the header.
func ExampleSaveFile() {
	dir, err := os.MkdirTemp("", "torch-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "weights.safetensors")

	s := torch.NewScope()
	defer s.Close()
	w, _ := torch.FromFloat32(s, []float32{1, 2, 3, 4}, []int64{2, 2}, torch.Float32, torch.CPU)
	b, _ := torch.FromFloat32(s, []float32{0.5, -0.5}, []int64{2}, torch.BFloat16, torch.CPU)
	err = torch.SaveFile(path, map[string]*torch.Tensor{"proj.weight": w, "proj.bias": b},
		map[string]string{"format": "pt"})
	if err != nil {
		fmt.Println(err)
		return
	}

	loaded, err := torch.LoadFile(s, path, torch.CPU)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"proj.bias", "proj.weight"} {
		t := loaded[name]
		v, _ := t.Float32s()
		fmt.Println(name, t.Shape(), t.DType(), v)
	}

	f, err := safetensors.Open(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	fmt.Println(f.Names(), f.Header.Metadata["format"])
	// Output:
	// proj.bias [2] bfloat16 [0.5 -0.5]
	// proj.weight [2 2] float32 [1 2 3 4]
	// [proj.bias proj.weight] pt
}

// A training step recorded once as a CUDA graph and replayed: the step's
// input lives in a tensor made before the recording and is refilled
// between replays, the optimiser keeps its learning rate and step count on
// the device (Capturable), and the clip leaves its norm there. (It needs a
// CUDA device; on the CPU, CaptureGraph reports so.)
func ExampleCaptureGraph() {
	dev := torch.CUDA(0)
	w, err := torch.Zeros(nil, []int64{4}, torch.Float32, dev)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Free()
	if err := w.SetRequiresGrad(true); err != nil {
		fmt.Println(err)
		return
	}
	target, err := torch.Zeros(nil, []int64{4}, torch.Float32, dev)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer target.Free()
	opt, err := torch.NewAdamW([]*torch.Tensor{w}, 0.1, 0.9, 0.999, 1e-8, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer opt.Close()
	opt.Capturable = true
	var loss *torch.Tensor // rewritten by every replay
	g, err := torch.CaptureGraph(dev, 1, func(s *torch.Scope) error {
		if err := w.ZeroGrad(); err != nil {
			return err
		}
		loss = s.Sum(s.Square(s.Sub(w, target)), false)
		if err := torch.Backward(loss); err != nil {
			return err
		}
		norm, err := torch.ClipGradNormDevice(s, []*torch.Tensor{w}, 1)
		if err != nil {
			return err
		}
		opt.SkipUnlessFinite = norm
		return opt.Step()
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	for step := range 100 {
		next, err := torch.Full(nil, []int64{4}, 1, torch.Float32, dev)
		if err != nil {
			fmt.Println(err)
			return
		}
		err = torch.CopyInto(target, next) // the step's data
		next.Free()
		if err == nil {
			err = opt.SetLR(0.1 / float64(1+step/50)) // a schedule, between replays
		}
		if err == nil {
			err = g.Replay()
		}
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	v, _ := loss.Item()
	fmt.Printf("loss after %d steps: %.4f\n", opt.Steps(), v)
}
