//go:build cuda

package unet

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CUDA(0)
