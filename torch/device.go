package torch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/onestepvideo/osv-go/internal/cbridge"
)

// Device is where a tensor lives: the CPU (the zero value) or one CUDA
// device. Functions given a device that does not exist return an error;
// Check tests one in advance.
type Device struct {
	CUDA  bool // false: the CPU
	Index int  // the CUDA device index
}

// CPU is the host device (Device's zero value).
var CPU = Device{}

// CUDA returns the i-th CUDA device (counted from 0); it does not check
// that the device exists.
func CUDA(i int) Device { return Device{CUDA: true, Index: i} }

// String spells the device as ParseDevice reads it: "cpu" or "cuda:N".
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

// ParseDevice reads "cpu", "cuda" (device 0) or "cuda:N", in any case and
// with surrounding spaces, and checks that the device exists: another
// spelling, or a device this build or machine lacks, is an error.
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
// on this machine (a negative CUDA index included); the CPU always is.
func (d Device) Check() error {
	if !d.CUDA {
		return nil
	}
	if d.Index < 0 {
		return fmt.Errorf("device %s: negative CUDA index", d)
	}
	if !cbridge.CUDABuilt() {
		return fmt.Errorf("device %s: this build has no CUDA support (built against a CPU libtorch)", d)
	}
	if n := cbridge.CUDADeviceCount(); d.Index >= n {
		return fmt.Errorf("device %s: %d CUDA device(s) visible", d, n)
	}
	return nil
}
