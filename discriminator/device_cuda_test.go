//go:build cuda

package discriminator

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CUDA(0)
