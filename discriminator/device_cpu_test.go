//go:build !cuda

package discriminator

import "github.com/onestepvideo/osv-go/internal/torch"

var testDevice = torch.CPU
