package torch

import (
	"fmt"
	"runtime"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Autocast runs f under libtorch's automatic mixed precision for dev's
// device type, as PyTorch's torch.autocast does: matrix products and
// convolutions in dtype (BFloat16 or Float16) from float32 inputs, and the
// operations that need range (normalisations, softmax, reductions, losses)
// in float32. The weights stay float32: a training step keeps float32
// parameters and gradients, and autograd's backward pass, wherever it is
// called, follows the dtypes the forward pass chose. The setting belongs to
// the OS thread, so f runs with the goroutine locked to its thread; casts
// of the weights are not cached, so a CUDA graph can record f (CaptureGraph
// inside f). The state found is restored when f returns or panics, so
// calls nest. A dtype other than those two is an error, and f does not run.
func Autocast(dev Device, dtype DType, f func() error) (err error) {
	if dtype != BFloat16 && dtype != Float16 {
		return fmt.Errorf("autocast: dtype %v: want bfloat16 or float16", dtype)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev, err := cb.Autocast(dev.CUDA, true, int(dtype))
	if err != nil {
		return fmt.Errorf("autocast: %w", err)
	}
	defer func() {
		if e := cb.RestoreAutocast(dev.CUDA, prev); e != nil && err == nil {
			err = fmt.Errorf("autocast: %w", e)
		}
	}()
	return f()
}
