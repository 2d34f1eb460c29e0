package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"log"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	_ "embed"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/osv/media"
	"github.com/onestepvideo/osv-go/torch"
)

// serverConfig is what the server needs to know besides the pipeline.
type serverConfig struct {
	sampler     osv.Sampler
	samplerName string
	queue       int
	workers     int
	maxUpload   int64 // bytes
	maxPixels   int
	maxFrames   int
	maxSteps    int
	multiple    int    // widths and heights are multiples of it
	defaults    params // what a request leaves out
	mp4         bool   // ffmpeg is there
	timeout     time.Duration
	watchGrace  time.Duration
	resultTTL   time.Duration
	keepalive   time.Duration // comment lines on quiet event streams
	device      torch.Device
	model       string // for the page
}

// serverConfigFrom resolves the flags against the pipeline's configs.
func serverConfigFrom(o *options, p *osv.Pipeline) serverConfig {
	sampler, _ := parseSampler(o.sampler, o.schedule)
	steps, _, _ := sampler.Defaults()
	if o.steps > 0 {
		steps = o.steps
	}
	frames := int(p.UNet.Config.NumFrames)
	if o.frames > 0 {
		frames = o.frames
	}
	maxFrames := o.maxFrames
	if maxFrames == 0 {
		maxFrames = max(frames, int(p.UNet.Config.NumFrames))
	}
	_, err := exec.LookPath("ffmpeg")
	mp4 := err == nil
	format := "gif"
	if mp4 {
		format = "mp4"
	}
	model := o.model
	if o.random {
		model = "random weights"
	}
	return serverConfig{
		sampler: sampler, samplerName: o.sampler, queue: o.queue, workers: o.workers,
		maxUpload: int64(o.maxUploadMB) << 20, maxPixels: o.maxPixels, maxFrames: maxFrames, maxSteps: o.maxSteps,
		multiple: 8 << (len(p.UNet.Config.BlockOutChannels) - 1),
		defaults: params{
			Steps: steps, Frames: frames, Width: o.width, Height: o.height,
			MotionBucket: 127, FPS: 7, Format: format,
		},
		mp4: mp4, timeout: o.timeout, watchGrace: o.watchGrace, resultTTL: o.resultTTL,
		keepalive: 15 * time.Second, device: p.Device(), model: filepath.Base(model),
	}
}

// generateFunc is Pipeline.Generate's signature (tests wrap it).
type generateFunc func(ctx context.Context, img image.Image, o osv.GenerateOptions) (*osv.Video, error)

// server is the service: the pipeline behind a queue and its workers,
// the jobs that asynchronous requests follow, and the metrics.
type server struct {
	cfg      serverConfig
	pipe     *osv.Pipeline
	generate generateFunc
	q        *queue
	m        *metrics
	log      *log.Logger
	page     *template.Template
	decoding chan struct{} // bounds the uploads decoded at once
	pipeline chan struct{} // held by the worker whose job is generating

	base     context.Context // every job's context descends from it
	stop     context.CancelCauseFunc
	draining atomic.Bool
	workers  sync.WaitGroup
	closing  sync.Once

	mu       sync.Mutex
	jobs     map[string]*job // async jobs, until their result expires
	finished []string        // async jobs that ended, oldest first
}

//go:embed page.html
var pageHTML string

// newServer starts the workers on p; close stops them and closes p.
func newServer(p *osv.Pipeline, cfg serverConfig, logger *log.Logger) (*server, error) {
	if err := checkDefaults(cfg); err != nil {
		return nil, err
	}
	page, err := template.New("page").Parse(pageHTML)
	if err != nil {
		return nil, err
	}
	s := &server{
		cfg: cfg, pipe: p, generate: p.Generate, q: newQueue(cfg.queue), m: newMetrics(), log: logger, page: page,
		decoding: make(chan struct{}, max(2, cfg.workers)), pipeline: make(chan struct{}, 1), jobs: map[string]*job{},
	}
	s.base, s.stop = context.WithCancelCause(context.Background())
	for range cfg.workers {
		s.workers.Add(1)
		go s.work()
	}
	return s, nil
}

// checkDefaults refuses flags whose defaults no request could use.
func checkDefaults(c serverConfig) error {
	d := c.defaults
	if d.Width%c.multiple != 0 || d.Height%c.multiple != 0 {
		return fmt.Errorf("-width %d -height %d: want multiples of %d (the VAE's 8 times the UNet's downsampling)", d.Width, d.Height, c.multiple)
	}
	if d.Width*d.Height > c.maxPixels {
		return fmt.Errorf("-width %d -height %d: %d pixels, more than -max-pixels %d", d.Width, d.Height, d.Width*d.Height, c.maxPixels)
	}
	if d.Frames > c.maxFrames {
		return fmt.Errorf("-frames %d: more than -max-frames %d", d.Frames, c.maxFrames)
	}
	if d.Steps > c.maxSteps {
		return fmt.Errorf("-steps %d: more than -max-steps %d", d.Steps, c.maxSteps)
	}
	return checkSteps(c.sampler, d.Steps)
}

// close cancels what is left, stops the workers and closes the pipeline.
func (s *server) close() {
	s.closing.Do(func() {
		s.draining.Store(true)
		s.stop(errShutdown)
		for _, j := range s.q.close() {
			j.finish(nil, "", s.failure(j, errShutdown))
		}
		s.workers.Wait()
		if err := s.pipe.Close(); err != nil {
			s.log.Printf("closing the pipeline: %v", err)
		}
	})
}

// handler routes the endpoints; every answer is counted in the metrics.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/{$}", methods{"GET": s.servePage})
	mux.Handle("/healthz", methods{"GET": s.serveHealth})
	mux.Handle("/metrics", methods{"GET": s.serveMetrics})
	mux.Handle("/v1/generate", methods{"POST": s.serveGenerate})
	mux.Handle("/v1/generate/{id}", methods{"GET": s.serveJob, "DELETE": s.serveCancel})
	mux.Handle("/v1/generate/{id}/events", methods{"GET": s.serveEvents})
	mux.Handle("/v1/generate/{id}/video", methods{"GET": s.serveVideo})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, msg: fmt.Sprintf("no endpoint %s; see GET / for the page and POST /v1/generate for the API", r.URL.Path)})
	})
	return s.m.count(mux)
}

// methods answers each method with its handler and any other with 405,
// naming the methods allowed; GET also answers HEAD.
type methods map[string]http.HandlerFunc

func (ms methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := r.Method
	if m == http.MethodHead {
		m = http.MethodGet
	}
	if h, ok := ms[m]; ok {
		h(w, r)
		return
	}
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "DELETE"} {
		if _, ok := ms[m]; ok || (m == "HEAD" && ms["GET"] != nil) {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", joinComma(allow))
	writeError(w, &apiError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, joinComma(allow))})
}

func joinComma(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// apiError is an answer other than success: its status, its message and,
// for 503, the seconds a client should wait.
type apiError struct {
	status     int
	msg        string
	retryAfter int
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// writeError answers with e as JSON: {"error": "..."}.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, map[string]string{"error": e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// pageData fills the page's form with the service's defaults and limits.
type pageData struct {
	Model, Sampler                 string
	Steps, MaxSteps                int
	Frames, MaxFrames              int
	Width, Height, Multiple        int
	MaxPixels, Motion, FPS, Upload int
	MP4                            bool
}

func (s *server) servePage(w http.ResponseWriter, r *http.Request) {
	c := s.cfg
	d := pageData{
		Model: c.model, Sampler: c.samplerName, Steps: c.defaults.Steps, MaxSteps: c.maxSteps,
		Frames: c.defaults.Frames, MaxFrames: c.maxFrames, Width: c.defaults.Width, Height: c.defaults.Height,
		Multiple: c.multiple, MaxPixels: c.maxPixels, Motion: c.defaults.MotionBucket, FPS: c.defaults.FPS,
		Upload: int(c.maxUpload >> 20), MP4: c.mp4,
	}
	var b bytes.Buffer
	if err := s.page.Execute(&b, d); err != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, msg: "rendering the page: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	w.Write(b.Bytes())
}

func (s *server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "shutting down")
		return
	}
	fmt.Fprintln(w, "ok")
}

// serveGenerate checks the request, queues it, and answers with the video
// (or, with async, with the job's addresses).
func (s *server) serveGenerate(w http.ResponseWriter, r *http.Request) {
	j, e := s.admit(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	if j.async {
		w.Header().Set("Location", "/v1/generate/"+j.id)
		writeJSON(w, http.StatusAccepted, map[string]string{
			"id": j.id, "events": "/v1/generate/" + j.id + "/events", "video": "/v1/generate/" + j.id + "/video",
		})
		return
	}
	<-j.done
	if r.Context().Err() != nil {
		s.m.countCode(w, statusClientGone)
		return
	}
	if j.fail != nil {
		writeError(w, j.fail)
		return
	}
	w.Header().Set("Content-Type", j.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(j.video)))
	w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", j.p.filename()))
	w.Header().Set("X-Generation-Seconds", strconv.FormatFloat(j.genTime.Seconds(), 'f', 3, 64))
	w.Write(j.video)
}

// statusClientGone is what the metrics count for a request whose client
// left before its answer (nginx's convention; never sent).
const statusClientGone = 499

// admit reads and checks the form, takes a place in the queue, decodes the
// picture and queues the job. Everything that can be refused is refused
// before the place is taken, except a picture whose data is corrupt past
// its header.
func (s *server) admit(w http.ResponseWriter, r *http.Request) (*job, *apiError) {
	if s.draining.Load() {
		return nil, &apiError{status: http.StatusServiceUnavailable, msg: "the service is shutting down", retryAfter: 5}
	}
	f, e := s.readForm(w, r)
	if f != nil {
		defer os.RemoveAll(f.dir)
	}
	if e != nil {
		return nil, e
	}
	if !s.q.reserve() {
		waiting, running := s.q.depth()
		return nil, &apiError{status: http.StatusServiceUnavailable, retryAfter: s.retryAfter(waiting + running),
			msg: fmt.Sprintf("the queue is full (%d waiting, %d running); retry later", waiting, running)}
	}
	img, e := s.decode(r.Context(), f)
	if e != nil {
		s.q.unreserve()
		return nil, e
	}
	// The job's context ends for a reason of its own (context.Cause): the
	// client leaving (a synchronous request), the timeout, the shutdown,
	// no one watching or DELETE (an async job).
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	j := newJob(ctx, cancel, f.p, img)
	j.async = f.p.Async
	stopBase := context.AfterFunc(s.base, func() { cancel(context.Cause(s.base)) })
	if s.cfg.timeout > 0 {
		t := time.AfterFunc(s.cfg.timeout, func() { cancel(errTimeout) })
		context.AfterFunc(ctx, func() { t.Stop(); stopBase() })
	} else {
		context.AfterFunc(ctx, func() { stopBase() })
	}
	if j.async {
		j.id = newID()
		s.mu.Lock()
		s.jobs[j.id] = j
		s.mu.Unlock()
		j.expectWatchers(s.cfg.watchGrace)
		go s.expire(j)
	} else {
		context.AfterFunc(r.Context(), func() { cancel(errClientGone) })
	}
	s.q.commit(j, func(j *job) *apiError { return s.failure(j, nil) })
	return j, nil
}

// retryAfter estimates the seconds until a place frees: the mean
// generation time of the jobs ahead, spread over the workers.
func (s *server) retryAfter(ahead int) int {
	mean := s.m.meanGeneration()
	if mean <= 0 {
		return 1
	}
	return int(min(60, max(1, math.Ceil(mean*float64(ahead)/float64(s.cfg.workers)))))
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// expire forgets an async job resultTTL after it ends, and the oldest
// results when more are kept than the queue and the workers hold.
func (s *server) expire(j *job) {
	<-j.done
	s.mu.Lock()
	s.finished = append(s.finished, j.id)
	for len(s.finished) > max(4, s.cfg.queue+s.cfg.workers) {
		delete(s.jobs, s.finished[0])
		s.finished = s.finished[1:]
	}
	s.mu.Unlock()
	time.AfterFunc(s.cfg.resultTTL, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.jobs[j.id] == j {
			delete(s.jobs, j.id)
			for i, id := range s.finished {
				if id == j.id {
					s.finished = append(s.finished[:i], s.finished[i+1:]...)
					break
				}
			}
		}
	})
}

// failure is the answer for a job that ended with err: why its context
// was cancelled when it was, err itself otherwise.
func (s *server) failure(j *job, err error) *apiError {
	if j.ctx.Err() == nil && err != nil {
		return &apiError{status: http.StatusInternalServerError, msg: "generation failed: " + oneLine(err)}
	}
	switch cause := context.Cause(j.ctx); {
	case errors.Is(cause, errShutdown):
		return &apiError{status: http.StatusServiceUnavailable, msg: "cancelled: " + cause.Error(), retryAfter: 5}
	case errors.Is(cause, errTimeout):
		return &apiError{status: http.StatusGatewayTimeout, msg: fmt.Sprintf("cancelled: the request ran past the service's limit of %s", s.cfg.timeout)}
	case errors.Is(cause, errUnwatched):
		return &apiError{status: http.StatusGone, msg: fmt.Sprintf("cancelled: no client followed the job's events for %s", s.cfg.watchGrace)}
	case errors.Is(cause, errDeleted):
		return &apiError{status: http.StatusGone, msg: "cancelled by DELETE"}
	default:
		return &apiError{status: statusClientGone, msg: "cancelled: the client disconnected"}
	}
}

// work runs jobs until the queue closes, on an OS thread of its own: the
// native library's per-thread state and allocator caches stay with the
// worker instead of spreading over every thread the Go scheduler has.
func (s *server) work() {
	defer s.workers.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		j := s.q.take()
		if j == nil {
			return
		}
		s.runJob(j)
		s.q.done()
	}
}

// runJob generates j's video and encodes it.
func (s *server) runJob(j *job) {
	if j.ctx.Err() != nil {
		j.finish(nil, "", s.failure(j, j.ctx.Err()))
		return
	}
	// The pipeline runs one call at a time: wait for it here, so that the
	// job reads as running, and its time counts, only once it runs.
	select {
	case s.pipeline <- struct{}{}:
	case <-j.ctx.Done():
		fail := s.failure(j, j.ctx.Err())
		s.m.generated(outcomeOf(fail), 0)
		j.finish(nil, "", fail)
		return
	}
	j.update(func() { j.state = stateRunning })
	t0 := time.Now()
	v, err := s.runPipeline(j)
	<-s.pipeline
	took := time.Since(t0)
	if err != nil {
		fail := s.failure(j, err)
		s.m.generated(outcomeOf(fail), took)
		j.finish(nil, "", fail)
		return
	}
	frames := v.Frames
	osv.Release(v.Tensor)
	s.m.generated("ok", took)
	j.update(func() { j.state, j.genTime = stateEncoding, took })
	video, ctype, err := encode(frames, j.p)
	if err != nil {
		j.finish(nil, "", &apiError{status: http.StatusInternalServerError, msg: "encoding the video failed: " + oneLine(err)})
		return
	}
	j.finish(video, ctype, nil)
}

// runPipeline is the Generate call of j, reporting its steps.
func (s *server) runPipeline(j *job) (*osv.Video, error) {
	o := j.p.options(s.cfg.sampler)
	o.Progress = func(step, total int) { j.update(func() { j.step, j.total = step, total }) }
	return s.generate(j.ctx, j.img, o)
}

// outcomeOf names a failure for the metrics.
func outcomeOf(e *apiError) string {
	switch e.status {
	case http.StatusInternalServerError:
		return "failed"
	case http.StatusGatewayTimeout:
		return "timeout"
	}
	return "cancelled"
}

// encode writes frames as p.Format and reads the file back.
func encode(frames []image.Image, p params) ([]byte, string, error) {
	dir, err := os.MkdirTemp("", "osv-serve-video-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "clip."+p.Format)
	if err := media.WriteVideo(path, frames, float64(p.FPS)); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	ctype := "image/gif"
	if p.Format == "mp4" {
		ctype = "video/mp4"
	}
	return b, ctype, err
}

// lookup finds an async job, or answers 404.
func (s *server) lookup(w http.ResponseWriter, r *http.Request) *job {
	id := r.PathValue("id")
	s.mu.Lock()
	j := s.jobs[id]
	s.mu.Unlock()
	if j == nil {
		writeError(w, &apiError{status: http.StatusNotFound, msg: fmt.Sprintf("no job %q: unknown, or its result was dropped (results are kept for %s)", id, s.cfg.resultTTL)})
	}
	return j
}

func (s *server) serveJob(w http.ResponseWriter, r *http.Request) {
	if j := s.lookup(w, r); j != nil {
		v, _ := j.view(s.q)
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *server) serveCancel(w http.ResponseWriter, r *http.Request) {
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	j.cancel(errDeleted)
	// A waiting job ends at once; a running one between two steps.
	select {
	case <-j.done:
	case <-time.After(5 * time.Second):
	case <-r.Context().Done():
		return
	}
	v, _ := j.view(s.q)
	writeJSON(w, http.StatusOK, v)
}

// serveVideo answers with a finished job's video (ranges included, as
// video elements ask for them), or with why there is none.
func (s *server) serveVideo(w http.ResponseWriter, r *http.Request) {
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	v, _ := j.view(s.q)
	switch v.State {
	case "done":
		w.Header().Set("Content-Type", j.ctype)
		w.Header().Set("Cache-Control", "private, max-age=3600")
		w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", j.p.filename()))
		http.ServeContent(w, r, "", j.finished, bytes.NewReader(j.video))
	case "failed":
		writeError(w, j.fail)
	default:
		msg := fmt.Sprintf("job %s is %s, not finished: follow /v1/generate/%s/events", j.id, v.State, j.id)
		if v.State == "running" && v.Total > 0 {
			msg = fmt.Sprintf("job %s is at step %d of %d, not finished: follow /v1/generate/%s/events", j.id, v.Step, v.Total, j.id)
		}
		writeError(w, &apiError{status: http.StatusConflict, msg: msg})
	}
}

// serveEvents streams a job's progress as server-sent events: queued
// (with the jobs ahead), progress (step and total), encoding, then done
// (where the video is) or failed (its status and message). While the
// stream is open the job is being watched.
func (s *server) serveEvents(w http.ResponseWriter, r *http.Request) {
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	j.watch(1)
	defer j.watch(-1)
	keep := time.NewTicker(s.cfg.keepalive)
	defer keep.Stop()
	last := ""
	for {
		v, changed := j.view(s.q)
		name := map[string]string{"queued": "queued", "running": "progress", "encoding": "encoding", "done": "done", "failed": "failed"}[v.State]
		data, _ := json.Marshal(v)
		if msg := name + string(data); msg != last {
			last = msg
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
			if rc.Flush() != nil {
				return
			}
		}
		if v.terminal {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-keep.C:
			fmt.Fprint(w, ": keepalive\n\n")
			if rc.Flush() != nil {
				return
			}
		}
	}
}
