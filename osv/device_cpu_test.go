//go:build !cuda

package osv

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CPU
