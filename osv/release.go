package osv

import (
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// Release frees the native (CPU or GPU) memory of tensors returned by this
// module's packages now, instead of when the Go garbage collector finds them
// unreachable. Each tensor must not be used afterwards. Releasing a tensor
// twice, or a zero Tensor, does nothing.
func Release(ts ...gotorch.Tensor) { torch.Release(ts...) }
