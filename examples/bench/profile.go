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
// DIR/<case>.json and writes the class table and the kernel table to
// DIR/<case>.txt and stderr.
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
	tr, err := torch.ReadDeviceTrace(base + ".json")
	if err != nil {
		return err
	}
	f, err := os.Create(base + ".txt")
	if err != nil {
		return err
	}
	defer f.Close()
	w := io.MultiWriter(f, os.Stderr)
	writeClassTable(w, name, tr)
	writeKernelTable(w, name, tr.Times, 30)
	return nil
}

// writeClassTable prints the device's time by kernel class, then the
// span from the first device event to the last and the gaps in it.
func writeClassTable(w io.Writer, name string, tr torch.DeviceTrace) {
	type row struct {
		us    float64
		calls int
	}
	by := map[string]row{}
	for _, k := range tr.Times {
		c := torch.KernelClass(k)
		r := by[c]
		r.us += k.US
		r.calls += k.Calls
		by[c] = r
	}
	span := max(tr.SpanUS, 1e-9)
	fmt.Fprintf(w, "%s: %.1f ms from the first device event to the last, %d events\n", name, tr.SpanUS/1000, tr.Events)
	fmt.Fprintf(w, "%-14s %10s %8s %8s\n", "class", "ms", "of span", "calls")
	for _, c := range torch.KernelClasses {
		if r, ok := by[c]; ok {
			fmt.Fprintf(w, "%-14s %10.2f %7.1f%% %8d\n", c, r.us/1000, 100*r.us/span, r.calls)
		}
	}
	fmt.Fprintf(w, "%-14s %10.2f %7.1f%%\n", "gaps", tr.GapUS()/1000, 100*tr.GapUS()/span)
	sum := 0.0
	for _, r := range by {
		sum += r.us
	}
	if over := sum - tr.BusyUS; over > 0.005*span {
		fmt.Fprintf(w, "(events overlapped for %.2f ms: the classes sum to more than the busy time)\n", over/1000)
	}
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
