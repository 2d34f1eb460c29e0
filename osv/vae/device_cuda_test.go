//go:build cuda

package vae

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CUDA(0)
