//go:build cuda

package clip

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CUDA(0)
