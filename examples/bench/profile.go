package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/onestepvideo/osv-go/torch"
)

// profileRun runs fn once under the profiler, keeps the trace as
// DIR/<case>.json and writes the kernel table to DIR/<case>.txt and stderr.
func (b *bench) profileRun(name string, fn func() error) error {
	base := filepath.Join(b.profileDir, strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, name))
	if err := torch.Synchronize(b.dev); err != nil {
		return err
	}
	if err := torch.StartProfiler(b.dev); err != nil {
		return err
	}
	ferr := fn()
	if err := torch.Synchronize(b.dev); err != nil && ferr == nil {
		ferr = err
	}
	if err := torch.StopProfiler(base + ".json"); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("%s (profiled): %w", name, ferr)
	}
	ks, err := torch.DeviceTimes(base + ".json")
	if err != nil {
		return err
	}
	f, err := os.Create(base + ".txt")
	if err != nil {
		return err
	}
	defer f.Close()
	writeKernelTable(io.MultiWriter(f, os.Stderr), name, ks, 30)
	return nil
}

// writeKernelTable prints the top kernels with their share of the total.
func writeKernelTable(w io.Writer, name string, ks []torch.DeviceTime, top int) {
	total := 0.0
	for _, k := range ks {
		total += k.US
	}
	fmt.Fprintf(w, "%s: %.1f ms of GPU time in %d kinds of kernel\n", name, total/1000, len(ks))
	fmt.Fprintf(w, "%10s %6s %7s  %s\n", "ms", "share", "calls", "kernel")
	for i, k := range ks {
		if i == top {
			break
		}
		n := k.Name
		if len(n) > 150 {
			n = n[:150] + "…"
		}
		fmt.Fprintf(w, "%10.2f %5.1f%% %7d  %s\n", k.US/1000, 100*k.US/max(total, 1e-9), k.Calls, n)
	}
}
