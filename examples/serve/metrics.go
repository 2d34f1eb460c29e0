package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onestepvideo/osv-go/torch"
)

// latencyBuckets are the histograms' upper bounds in seconds.
var latencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300}

// histogram counts observations into cumulative buckets, Prometheus-style.
type histogram struct {
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      int64
}

func newHistogram() *histogram { return &histogram{counts: make([]int64, len(latencyBuckets)+1)} }

func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(latencyBuckets, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

func (h *histogram) write(w io.Writer, name, labels string) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum int64
	for i, b := range latencyBuckets {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	cum += h.counts[len(latencyBuckets)]
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, cum)
	braces := ""
	if labels != "" {
		braces = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", name, braces, strconv.FormatFloat(h.sum, 'g', -1, 64), name, braces, h.n)
}

type requestKey struct {
	route string
	code  int
}

// metrics are the service's counters.
type metrics struct {
	mu          sync.Mutex
	requests    map[requestKey]int64
	generations map[string]int64 // by outcome: ok, failed, cancelled, timeout
	generation  *histogram       // seconds in Generate, successful calls
	request     *histogram       // seconds of POST /v1/generate, admission to answer
}

func newMetrics() *metrics {
	return &metrics{requests: map[requestKey]int64{}, generations: map[string]int64{}, generation: newHistogram(), request: newHistogram()}
}

func (m *metrics) generated(outcome string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.generations[outcome]++
	if outcome == "ok" {
		m.generation.observe(d.Seconds())
	}
}

// meanGeneration is the mean seconds of the successful generations so
// far (0 before the first).
func (m *metrics) meanGeneration() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.generation.n == 0 {
		return 0
	}
	return m.generation.sum / float64(m.generation.n)
}

// recorder notes the status a handler answers with.
type recorder struct {
	http.ResponseWriter
	code     int
	override int // countCode's, for answers that could not be sent
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// count wraps h, counting each answer by route and status.
func (m *metrics) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		code := rec.code
		if rec.override != 0 {
			code = rec.override
		}
		if code == 0 {
			code = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		m.mu.Lock()
		m.requests[requestKey{route, code}]++
		if route == "/v1/generate" && r.Method == http.MethodPost {
			m.request.observe(time.Since(t0).Seconds())
		}
		m.mu.Unlock()
	})
}

// countCode makes the metrics count code for this request, whatever was
// written (statusClientGone, when nothing could be).
func (m *metrics) countCode(w http.ResponseWriter, code int) {
	if rec, ok := w.(*recorder); ok {
		rec.override = code
	}
}

// residentMemory is the process's resident set in bytes (0 where
// /proc/self/statm cannot be read).
func residentMemory() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// serveMetrics writes the Prometheus text exposition format.
func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	metric := func(name, typ, help string) { fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ) }
	m := s.m
	m.mu.Lock()
	metric("osv_http_requests_total", "counter", "HTTP requests answered, by route and status (499: the client left first).")
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b requestKey) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		return a.code - b.code
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "osv_http_requests_total{route=%q,code=\"%d\"} %d\n", k.route, k.code, m.requests[k])
	}
	metric("osv_generations_total", "counter", "Pipeline runs, by outcome.")
	for _, o := range []string{"ok", "failed", "cancelled", "timeout"} {
		fmt.Fprintf(&b, "osv_generations_total{outcome=%q} %d\n", o, m.generations[o])
	}
	metric("osv_generation_seconds", "histogram", "Seconds in the pipeline of the successful runs (the GPU's share).")
	m.generation.write(&b, "osv_generation_seconds", "")
	metric("osv_request_seconds", "histogram", "Seconds of POST /v1/generate, from the request to the answer (202 for async).")
	m.request.write(&b, "osv_request_seconds", "")
	m.mu.Unlock()

	waiting, running := s.q.depth()
	metric("osv_queue_depth", "gauge", "Requests waiting for a worker.")
	fmt.Fprintf(&b, "osv_queue_depth %d\n", waiting)
	metric("osv_queue_capacity", "gauge", "Requests that may wait (-queue).")
	fmt.Fprintf(&b, "osv_queue_capacity %d\n", s.cfg.queue)
	metric("osv_workers_busy", "gauge", "Workers running a job.")
	fmt.Fprintf(&b, "osv_workers_busy %d\n", running)
	metric("osv_workers", "gauge", "Workers (-workers).")
	fmt.Fprintf(&b, "osv_workers %d\n", s.cfg.workers)
	metric("osv_live_tensors", "gauge", "Native tensors alive in the process (the model's weights included).")
	fmt.Fprintf(&b, "osv_live_tensors %d\n", torch.Live())
	if s.cfg.device.CUDA {
		if st, err := torch.CUDAMemory(s.cfg.device); err == nil {
			metric("osv_gpu_memory_allocated_bytes", "gauge", "GPU memory held by live tensors.")
			fmt.Fprintf(&b, "osv_gpu_memory_allocated_bytes %d\n", st.Allocated)
			metric("osv_gpu_memory_peak_bytes", "gauge", "The most GPU memory live tensors have held.")
			fmt.Fprintf(&b, "osv_gpu_memory_peak_bytes %d\n", st.Peak)
			metric("osv_gpu_memory_reserved_bytes", "gauge", "GPU memory the caching allocator holds from the driver.")
			fmt.Fprintf(&b, "osv_gpu_memory_reserved_bytes %d\n", st.Reserved)
		}
	}
	metric("process_resident_memory_bytes", "gauge", "Resident memory of the process.")
	fmt.Fprintf(&b, "process_resident_memory_bytes %d\n", residentMemory())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, b.String())
}
