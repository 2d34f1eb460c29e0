//go:build !cuda

package vae

import "github.com/onestepvideo/osv-go/torch"

var testDevice = torch.CPU
