package torch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/onestepvideo/osv-go/internal/cbridge"
)

// Device is where a tensor lives.
type Device struct {
	CUDA  bool // false: the CPU
	Index int  // the CUDA device index
}

// CPU is the host device.
var CPU = Device{}

// CUDA returns the i-th CUDA device.
func CUDA(i int) Device { return Device{CUDA: true, Index: i} }

func (d Device) String() string {
	if !d.CUDA {
		return "cpu"
	}
	return "cuda:" + strconv.Itoa(d.Index)
}

func (d Device) code() (int, int) {
	if d.CUDA {
		return 1, d.Index
	}
	return 0, 0
}

// ParseDevice reads "cpu", "cuda" or "cuda:N" and checks that the device exists.
func ParseDevice(s string) (Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	var d Device
	switch {
	case s == "cpu":
		return CPU, nil
	case s == "cuda":
		d = CUDA(0)
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || i < 0 {
			return Device{}, fmt.Errorf("bad device %q: want cpu, cuda or cuda:N", s)
		}
		d = CUDA(i)
	default:
		return Device{}, fmt.Errorf("bad device %q: want cpu, cuda or cuda:N", s)
	}
	return d, d.Check()
}

// Check reports an error when the device is not available in this build or
// on this machine.
func (d Device) Check() error {
	if !d.CUDA {
		return nil
	}
	if !cbridge.CUDABuilt() {
		return fmt.Errorf("device %s: this build has no CUDA support (built against a CPU libtorch)", d)
	}
	if n := cbridge.CUDADeviceCount(); d.Index >= n {
		return fmt.Errorf("device %s: %d CUDA device(s) visible", d, n)
	}
	return nil
}
