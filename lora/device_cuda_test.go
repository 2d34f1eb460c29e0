//go:build cuda

package lora

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CUDA(0)
