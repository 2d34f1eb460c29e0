//go:build cuda

package solver

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CUDA(0)
