//go:build cuda

package clip

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CUDA(0)
