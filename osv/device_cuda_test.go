//go:build cuda

package osv

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CUDA(0)
