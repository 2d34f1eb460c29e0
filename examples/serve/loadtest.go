package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onestepvideo/osv-go/torch"
)

// loadSpec is a load test: Requests requests a round from Clients clients
// at once, Rounds rounds, each request the same form. A client that gets
// 503 waits Backoff before its next request. The whole run is bounded by
// Limit.
type loadSpec struct {
	Requests, Clients, Rounds int
	Backoff                   time.Duration
	Limit                     time.Duration
	Image                     []byte
	Fields                    map[string]string
}

// roundResult is what one round saw.
type roundResult struct {
	OK, Busy  int
	Other     map[int]int // other statuses (transport errors as 0)
	OtherMsg  string      // the first of them
	Latency   []time.Duration
	Elapsed   time.Duration
	RSS       int64 // resident memory after the round (after a GC)
	Heap      int64 // Go heap in use after the round (after a GC)
	Routines  int   // goroutines after the round
	Tensors   int64 // live native tensors after the round
	GPU       int64 // GPU memory allocated after the round
	GenSum    float64
	GenCount  int64
	ReqCount  int
	RetryHint string // a 503's Retry-After, for the report
}

// loadReport is a whole load test.
type loadReport struct {
	Spec                      loadSpec
	Queue, Workers            int
	Sampler, Size, Device     string
	TensorsBefore, RSSBefore  int64
	RSSWarm, GPUBefore        int64
	HeapWarm                  int64
	RoutinesWarm              int
	WarmUp                    time.Duration
	Rounds                    []roundResult
	GPUPeak                   int64
	generationN, generationS0 float64
}

// settle collects Go's garbage and hands freed pages back, so that the
// resident memory measured is what is held.
func settle() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	trimNative()
	return residentMemory()
}

// goroutinesDown is the goroutine count once the connections just
// closed have ended: it waits up to a second for it to reach want (0:
// for it to stop falling).
func goroutinesDown(want int) int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (want > 0 && m <= want) || (want == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}

// goHeap is the Go heap in use after a collection.
func goHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// runLoad measures s through url: one warm-up request, then the rounds.
func runLoad(ctx context.Context, s *server, url string, spec loadSpec) (*loadReport, error) {
	ctx, cancel := context.WithTimeout(ctx, spec.Limit)
	defer cancel()
	body, ctype, err := loadBody(spec)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: spec.Clients, DisableCompression: true}}
	defer client.CloseIdleConnections()
	rep := &loadReport{
		Spec: spec, Queue: s.cfg.queue, Workers: s.cfg.workers, Sampler: s.cfg.samplerName, Device: s.cfg.device.String(),
		Size: fmt.Sprintf("%s×%s, %s frames, %s steps", field(spec, "width", s.cfg.defaults.Width), field(spec, "height", s.cfg.defaults.Height),
			field(spec, "frames", s.cfg.defaults.Frames), field(spec, "steps", s.cfg.defaults.Steps)),
	}
	rep.RSSBefore, rep.TensorsBefore, rep.GPUBefore = settle(), torch.Live(), gpuAllocated(s)
	if s.cfg.device.CUDA {
		torch.ResetPeakMemory(s.cfg.device)
	}
	t0 := time.Now()
	if code, msg, err := post(ctx, client, url, body, ctype); err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("warm-up request: status %d %s %v", code, msg, err)
	}
	rep.WarmUp = time.Since(t0)
	client.CloseIdleConnections()
	rep.RoutinesWarm = goroutinesDown(0)
	rep.RSSWarm, rep.HeapWarm = settle(), goHeap()
	for range spec.Rounds {
		s.m.mu.Lock()
		sum0, n0 := s.m.generation.sum, s.m.generation.n
		s.m.mu.Unlock()
		r := loadRound(ctx, client, url, body, ctype, spec)
		s.m.mu.Lock()
		r.GenSum, r.GenCount = s.m.generation.sum-sum0, s.m.generation.n-n0
		s.m.mu.Unlock()
		client.CloseIdleConnections()
		r.Tensors = torch.Live()
		r.Routines = goroutinesDown(rep.RoutinesWarm)
		r.RSS, r.Heap, r.GPU = settle(), goHeap(), gpuAllocated(s)
		rep.Rounds = append(rep.Rounds, r)
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("the load test ran past its limit of %s", spec.Limit)
		}
	}
	if s.cfg.device.CUDA {
		if st, err := torch.CUDAMemory(s.cfg.device); err == nil {
			rep.GPUPeak = st.Peak
		}
	}
	return rep, nil
}

func field(spec loadSpec, name string, def int) string {
	if v, ok := spec.Fields[name]; ok {
		return v
	}
	return strconv.Itoa(def)
}

func gpuAllocated(s *server) int64 {
	if !s.cfg.device.CUDA {
		return 0
	}
	st, err := torch.CUDAMemory(s.cfg.device)
	if err != nil {
		return 0
	}
	return st.Allocated
}

// loadBody is the multipart form every request of the test sends.
func loadBody(spec loadSpec) ([]byte, string, error) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, err := mw.CreateFormFile("image", "load.png")
	if err != nil {
		return nil, "", err
	}
	fw.Write(spec.Image)
	keys := make([]string, 0, len(spec.Fields))
	for k := range spec.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		mw.WriteField(k, spec.Fields[k])
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return b.Bytes(), mw.FormDataContentType(), nil
}

// post sends one request and reads the whole answer; msg is an error's.
func post(ctx context.Context, client *http.Client, url string, body []byte, ctype string) (code int, msg string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/generate", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		msg = strings.TrimSpace(string(b))
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			msg += " (Retry-After " + ra + ")"
		}
	}
	return resp.StatusCode, msg, err
}

// loadRound sends spec.Requests requests from spec.Clients clients.
func loadRound(ctx context.Context, client *http.Client, url string, body []byte, ctype string, spec loadSpec) roundResult {
	r := roundResult{Other: map[int]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range spec.Clients {
		wg.Go(func() {
			for next.Add(1) <= int64(spec.Requests) {
				t := time.Now()
				code, msg, err := post(ctx, client, url, body, ctype)
				d := time.Since(t)
				mu.Lock()
				r.ReqCount++
				switch {
				case err == nil && code == http.StatusOK:
					r.OK++
					r.Latency = append(r.Latency, d)
				case err == nil && code == http.StatusServiceUnavailable:
					r.Busy++
					if r.RetryHint == "" {
						r.RetryHint = msg
					}
				default:
					r.Other[code]++
					if r.OtherMsg == "" {
						r.OtherMsg = fmt.Sprintf("status %d %s %v", code, msg, err)
					}
				}
				mu.Unlock()
				if code == http.StatusServiceUnavailable {
					select {
					case <-time.After(spec.Backoff):
					case <-ctx.Done():
					}
				}
			}
		})
	}
	wg.Wait()
	r.Elapsed = time.Since(t0)
	slices.Sort(r.Latency)
	return r
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// others counts the answers that were neither 200 nor 503.
func (r roundResult) others() int {
	n := 0
	for _, c := range r.Other {
		n += c
	}
	return n
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// markdown is the report as the table docs/SERVE.md keeps.
func (rep *loadReport) markdown() string {
	var b strings.Builder
	sp := rep.Spec
	fmt.Fprintf(&b, "%d requests a round from %d clients, %d rounds (a client waits %s after a 503); queue %d, workers %d; sampler %s, %s on %s.\n\n",
		sp.Requests, sp.Clients, sp.Rounds, sp.Backoff, rep.Queue, rep.Workers, rep.Sampler, rep.Size, rep.Device)
	fmt.Fprintf(&b, "| round | requests | 200 | 503 | other | p50 (200) | p95 (200) | 200s/s | mean generation | live tensors after | RSS after | Go heap after | goroutines after |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var all []time.Duration
	var ok, busy, other int
	var elapsed time.Duration
	for i, r := range rep.Rounds {
		gen := "-"
		if r.GenCount > 0 {
			gen = ms(time.Duration(r.GenSum / float64(r.GenCount) * float64(time.Second)))
		}
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %s | %s | %.2f | %s | %d | %s | %s | %d |\n", i+1, r.ReqCount, r.OK, r.Busy, r.others(),
			ms(percentile(r.Latency, 50)), ms(percentile(r.Latency, 95)), float64(r.OK)/r.Elapsed.Seconds(), gen, r.Tensors, mib(r.RSS), mib(r.Heap), r.Routines)
		all = append(all, r.Latency...)
		ok, busy, other, elapsed = ok+r.OK, busy+r.Busy, other+r.others(), elapsed+r.Elapsed
	}
	slices.Sort(all)
	fmt.Fprintf(&b, "\nIn all: %d requests, %d answered 200, %d answered 503, %d other; p50 %s, p95 %s; %.2f videos/s.\n",
		ok+busy+other, ok, busy, other, ms(percentile(all, 50)), ms(percentile(all, 95)), float64(ok)/elapsed.Seconds())
	last := rep.Rounds[len(rep.Rounds)-1]
	fmt.Fprintf(&b, "Live native tensors: %d before, %d after. Resident memory: %s before, %s after the warm-up request (%s), %s after round 1, %s after round %d; Go heap %s after the warm-up, %s after round %d; goroutines %d after the warm-up.\n",
		rep.TensorsBefore, last.Tensors, mib(rep.RSSBefore), mib(rep.RSSWarm), ms(rep.WarmUp), mib(rep.Rounds[0].RSS), mib(last.RSS), len(rep.Rounds), mib(rep.HeapWarm), mib(last.Heap), len(rep.Rounds), rep.RoutinesWarm)
	if rep.GPUPeak > 0 {
		fmt.Fprintf(&b, "GPU memory allocated: %s before, %s after; peak %s.\n", mib(rep.GPUBefore), mib(last.GPU), mib(rep.GPUPeak))
	}
	if busy > 0 {
		fmt.Fprintf(&b, "A 503 reads: %s\n", rep.firstBusy())
	}
	if other > 0 {
		fmt.Fprintf(&b, "First other answer: %s\n", rep.firstOther())
	}
	return b.String()
}

func (rep *loadReport) firstBusy() string {
	for _, r := range rep.Rounds {
		if r.RetryHint != "" {
			return r.RetryHint
		}
	}
	return ""
}

func (rep *loadReport) firstOther() string {
	for _, r := range rep.Rounds {
		if r.OtherMsg != "" {
			return r.OtherMsg
		}
	}
	return ""
}

// testPicture is a PNG of w×h: a gradient with a disc, for requests that
// need a picture and have none.
func testPicture(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy, rad := float64(w)*0.6, float64(h)*0.45, float64(min(w, h))*0.25
	for y := range h {
		for x := range w {
			c := color.RGBA{uint8(40 + 150*x/w), uint8(90 + 100*y/h), 200, 255}
			if dx, dy := float64(x)-cx, float64(y)-cy; dx*dx+dy*dy < rad*rad {
				c = color.RGBA{240, 190, 60, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// selfLoadTest serves on a loopback port, runs -loadtest, prints the
// report to stdout and shuts down. An answer other than 200 or 503, or a
// live-tensor count that does not come back, is an error.
func (s *server) selfLoadTest(ctx context.Context, o *options, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- s.serve(sctx, ln, o.shutdownTimeout) }()
	d := s.cfg.defaults
	rep, err := runLoad(ctx, s, "http://"+ln.Addr().String(), loadSpec{
		Requests: o.loadtest, Clients: o.clients, Rounds: o.rounds, Backoff: 250 * time.Millisecond,
		Limit: time.Duration(o.rounds) * 30 * time.Minute, Image: testPicture(d.Width, d.Height),
	})
	stop()
	if serr := <-served; err == nil {
		err = serr
	}
	if rep != nil && len(rep.Rounds) > 0 {
		fmt.Fprint(stdout, rep.markdown())
	}
	if err != nil {
		return err
	}
	for _, r := range rep.Rounds {
		if r.others() > 0 {
			return fmt.Errorf("the load test got answers other than 200 and 503: %s", r.OtherMsg)
		}
	}
	if last := rep.Rounds[len(rep.Rounds)-1]; last.Tensors != rep.TensorsBefore {
		return fmt.Errorf("live native tensors: %d before the load test, %d after", rep.TensorsBefore, last.Tensors)
	}
	return nil
}
