//go:build cuda

package solver

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CUDA(0)
