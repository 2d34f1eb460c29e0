//go:build !cuda

package lora

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CPU
