package osv

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// availableMemory is the host memory the kernel could give this process
// now (MemAvailable), in bytes; ok is false where it cannot be read.
var availableMemory = func() (bytes int64, ok bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// MemoryEstimate is a lower bound of the memory one Generate call needs
// for the output and the decoder, in bytes: on the host, the fitted image
// (RGBA and float32 planes) and the frames (float32 and RGBA); on the
// pipeline's device, the frames and the decoder's full-resolution
// activations for one chunk. On the CPU both are host memory.
func (p *Pipeline) MemoryEstimate(o GenerateOptions) (host, device int64) {
	o, _ = p.resolved(o)
	px := int64(o.Width) * int64(o.Height)
	f := int64(o.NumFrames)
	elt := int64(p.VAE.DType().Size())
	host = px*(4+12) + f*px*(12+4)
	// The decoder's last up block runs at full size with its widest
	// channel count: input, normalised and convolved activations live at once.
	ch := int64(p.VAE.Config.BlockOutChannels[0])
	device = f*px*12 + int64(min(o.DecodeChunkSize, o.NumFrames))*px*ch*elt*3
	return host, device
}

// checkMemory refuses, before anything is allocated, a request whose
// output alone would not fit in the memory available now.
func (p *Pipeline) checkMemory(o GenerateOptions) error {
	host, device := p.MemoryEstimate(o)
	need := host
	if !p.device.CUDA {
		need += device
	}
	avail, ok := availableMemory()
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("osv: size %d×%d with %d frames needs at least %s of memory for the frames and the decoder, and %s is available",
		o.Width, o.Height, o.NumFrames, gib(need), gib(avail))
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
