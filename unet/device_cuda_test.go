//go:build cuda

package unet

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CUDA(0)
