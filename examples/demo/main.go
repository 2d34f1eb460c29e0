// Command demo runs SVD's UNet from a diffusers folder on the reference
// inputs of a fixture set, prints its timing and its agreement with the
// reference output.
//
//	go run ./examples/demo -fixtures testdata/svd-tiny [-device cpu] [-dtype fp32] [-runs 5]
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("fixtures", "testdata/svd-tiny", "fixture folder (pipeline/unet and io/unet.safetensors)")
	device := flag.String("device", "cpu", "cpu, cuda or cuda:N")
	dtype := flag.String("dtype", "fp32", "fp32, fp16 or bf16")
	runs := flag.Int("runs", 5, "timed forward passes")
	flag.Parse()

	// The comparison with the reference is made in full float32 precision.
	if err := torch.SetTF32(false); err != nil {
		return err
	}
	t0 := time.Now()
	m, err := unet.Load(filepath.Join(*root, "pipeline", "unet"), unet.WithDevice(*device), unet.WithDType(*dtype))
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Printf("loaded %s (%d parameters, %s on %s) in %v\n", filepath.Join(*root, "pipeline", "unet"), m.NumParams(), m.DType(), m.Device(), time.Since(t0).Round(time.Millisecond))

	s := torch.NewScope()
	defer s.Close()
	io, err := torch.LoadFile(s, filepath.Join(*root, "io", "unet.safetensors"), m.Device())
	if err != nil {
		return err
	}
	in := map[string]gotorch.Tensor{}
	for _, k := range []string{"sample", "timestep", "encoder_hidden_states", "added_time_ids"} {
		t, ok := io[k]
		if !ok {
			return fmt.Errorf("io/unet.safetensors has no %q", k)
		}
		if in[k], err = torch.ToGotorch(t); err != nil {
			return err
		}
	}
	defer func() {
		for _, t := range in {
			osv.Release(t)
		}
	}()

	var times []time.Duration
	var out gotorch.Tensor
	for range *runs {
		osv.Release(out)
		t := time.Now()
		out, err = m.Forward(in["sample"], in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
		if err != nil {
			return err
		}
		if err := torch.Synchronize(m.Device()); err != nil {
			return err
		}
		times = append(times, time.Since(t))
	}
	defer osv.Release(out)
	slices.Sort(times)
	fmt.Printf("forward %v → %v: median %v over %d runs (min %v)\n", in["sample"].Shape(), out.Shape(), times[len(times)/2].Round(time.Microsecond), len(times), times[0].Round(time.Microsecond))

	got, err := torch.FromGotorch(s, out)
	if err != nil {
		return err
	}
	g, err := got.Float32s()
	if err != nil {
		return err
	}
	w, err := io["out"].Float32s()
	if err != nil {
		return err
	}
	if len(g) != len(w) {
		return fmt.Errorf("output has %d values, the reference %d", len(g), len(w))
	}
	var num, den float64
	for i := range g {
		d := float64(g[i]) - float64(w[i])
		num, den = num+d*d, den+float64(w[i])*float64(w[i])
	}
	rel := math.Sqrt(num / max(den, math.SmallestNonzeroFloat64))
	fmt.Printf("relative L2 error against diffusers' output: %.3g\n", rel)
	return nil
}
