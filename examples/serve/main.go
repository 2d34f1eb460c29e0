// Command serve is a web service around the image-to-video pipeline: a
// page where a user picks or drops a picture and watches the video it
// becomes, and an HTTP API for programs.
//
//	serve -model DIR [-unet PATH] [-lora DIR] [-sampler tts] [-device cuda] [-dtype bf16] \
//	    [-addr 127.0.0.1:8080] [-queue 8] [-workers 2] [-max-upload-mb 20]
//
// Endpoints:
//
//	GET  /                          the page (HTML, CSS and JS in one file)
//	POST /v1/generate               multipart form: image, and optionally steps, seed,
//	                                frames, width, height, motion_bucket, fps, format=gif|mp4;
//	                                answers with the video (image/gif or video/mp4).
//	                                With async=1 it answers 202 with the job's id instead:
//	GET  /v1/generate/{id}/events   progress as server-sent events (queued, progress,
//	                                encoding, then done or failed)
//	GET  /v1/generate/{id}/video    the finished video (kept for -result-ttl)
//	GET  /v1/generate/{id}          the job's state as JSON; DELETE cancels it
//	GET  /healthz                   "ok" (503 while shutting down)
//	GET  /metrics                   Prometheus text format: requests, queue depth,
//	                                generation latency, live native tensors, memory
//
// A bounded queue (-queue) stands in front of the workers (-workers): a
// request that finds it full is answered 503 with Retry-After. Workers
// share one pipeline, whose Generate runs one call at a time; with two
// workers one encodes a video while the other generates. A client that
// disconnects cancels its generation (an asynchronous job is cancelled
// when no one has followed its events for -watch-grace). Uploads larger
// than -max-upload-mb are refused with 413, anything that is not a PNG or
// JPEG picture and sizes out of range with 400, all before any work.
// SIGTERM or SIGINT shuts down: no new requests, in-flight work finishes
// or, past -shutdown-timeout, is cancelled; then the process exits 0.
//
// -random builds SVD's full-size models with random weights instead of
// loading -model, to measure the service without a checkpoint. -loadtest N
// serves on a loopback port, sends N requests from -clients goroutines
// (-rounds times), prints the figures and exits:
//
//	serve -random -device cuda -dtype bf16 -sampler tts -queue 8 -workers 1 -loadtest 24 -clients 4 -rounds 1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/onestepvideo/osv-go/osv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", oneLine(err))
		stop()
		os.Exit(1)
	}
}

func oneLine(err error) string {
	s := err.Error()
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// options are the command's flags.
type options struct {
	model, unet, lora        string
	sampler, schedule        string
	device, dtype            string
	random                   bool
	addr                     string
	queue, workers           int
	maxUploadMB              int
	width, height            int
	frames, steps            int
	maxPixels, maxFrames     int
	maxSteps                 int
	timeout, shutdownTimeout time.Duration
	watchGrace, resultTTL    time.Duration
	loadtest, clients        int
	rounds                   int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.model, "model", "", "SVD pipeline folder (model_index.json, unet/, vae/, ...)")
	fs.StringVar(&o.unet, "unet", "", "a student's UNet replacing the pipeline's: a diffusers UNet folder or a single state_dict .safetensors file")
	fs.StringVar(&o.lora, "lora", "", "a student's peft LoRA folder (adapter_config.json, adapter_model.safetensors), merged into the UNet")
	fs.StringVar(&o.sampler, "sampler", "euler", "euler (the teacher's, with guidance), consistency or tts (a distilled student's)")
	fs.StringVar(&o.schedule, "schedule", "osv", "the consistency sampler's σ schedule: osv (OSV's training grid) or animatelcm (AnimateLCM-SVD's)")
	fs.StringVar(&o.device, "device", "cpu", "cpu, cuda or cuda:N")
	fs.StringVar(&o.dtype, "dtype", "fp32", "fp32, fp16 or bf16")
	fs.BoolVar(&o.random, "random", false, "build SVD's full-size models with random weights instead of loading -model")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
	fs.IntVar(&o.queue, "queue", 8, "requests that may wait for a worker; more are answered 503")
	fs.IntVar(&o.workers, "workers", 2, "workers: each generates then encodes one video at a time (generation itself runs one call at a time)")
	fs.IntVar(&o.maxUploadMB, "max-upload-mb", 20, "largest request body in MiB; larger uploads are answered 413")
	fs.IntVar(&o.width, "width", 1024, "default video width in pixels")
	fs.IntVar(&o.height, "height", 576, "default video height in pixels")
	fs.IntVar(&o.frames, "frames", 0, "default frame count (default: the UNet config's num_frames)")
	fs.IntVar(&o.steps, "steps", 0, "default sampler steps (default: the sampler's, euler 25, consistency 4, tts 1)")
	fs.IntVar(&o.maxPixels, "max-pixels", 1024*576, "largest width×height a request may ask for")
	fs.IntVar(&o.maxFrames, "max-frames", 0, "most frames a request may ask for (default: the larger of -frames and num_frames)")
	fs.IntVar(&o.maxSteps, "max-steps", 50, "most sampler steps a request may ask for")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "a request's limit from admission to its video (0: none); past it the answer is 504")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long in-flight work may run before it is cancelled")
	fs.DurationVar(&o.watchGrace, "watch-grace", 10*time.Second, "an async job whose events no one follows for this long is cancelled")
	fs.DurationVar(&o.resultTTL, "result-ttl", 2*time.Minute, "how long an async job's video is kept")
	fs.IntVar(&o.loadtest, "loadtest", 0, "serve on a loopback port, send this many requests a round, print the figures and exit")
	fs.IntVar(&o.clients, "clients", 16, "-loadtest: concurrent clients")
	fs.IntVar(&o.rounds, "rounds", 3, "-loadtest: rounds")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: serve -model DIR [flags]

The teacher (SVD's Euler sampler with guidance, 25 steps):
  serve -model svd -device cuda -dtype bf16
a distilled student as examples/distill exports it, one step:
  serve -model svd -lora run2/export/lora -sampler tts -device cuda -dtype bf16
then open http://127.0.0.1:8080/, or:
  curl -F image=@photo.jpg -F steps=1 -F seed=3 -o clip.mp4 http://127.0.0.1:8080/v1/generate

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.random && (o.model != "" || o.unet != "" || o.lora != ""):
		return nil, fmt.Errorf("-random builds the models itself: leave out -model, -unet and -lora")
	case !o.random && o.model == "":
		return nil, fmt.Errorf("-model is required (or -random; see -help)")
	case o.queue < 0:
		return nil, fmt.Errorf("-queue %d: want 0 or more", o.queue)
	case o.workers < 1:
		return nil, fmt.Errorf("-workers %d: want at least 1", o.workers)
	case o.maxUploadMB < 1:
		return nil, fmt.Errorf("-max-upload-mb %d: want at least 1", o.maxUploadMB)
	case o.width < 1 || o.height < 1:
		return nil, fmt.Errorf("-width %d -height %d: want positive sizes", o.width, o.height)
	case o.frames < 0 || (o.frames == 0 && set["frames"]):
		return nil, fmt.Errorf("-frames %d: want at least 1", o.frames)
	case o.steps < 0 || (o.steps == 0 && set["steps"]):
		return nil, fmt.Errorf("-steps %d: want at least 1", o.steps)
	case o.maxPixels < 1:
		return nil, fmt.Errorf("-max-pixels %d: want at least 1", o.maxPixels)
	case o.maxFrames < 0 || (o.maxFrames == 0 && set["max-frames"]):
		return nil, fmt.Errorf("-max-frames %d: want at least 1", o.maxFrames)
	case o.maxSteps < 1:
		return nil, fmt.Errorf("-max-steps %d: want at least 1", o.maxSteps)
	case o.timeout < 0 || o.shutdownTimeout < 0 || o.watchGrace <= 0 || o.resultTTL <= 0:
		return nil, fmt.Errorf("-timeout and -shutdown-timeout want 0 or more, -watch-grace and -result-ttl more than 0")
	case o.loadtest < 0 || o.clients < 1 || o.rounds < 1:
		return nil, fmt.Errorf("-loadtest %d -clients %d -rounds %d: want -loadtest ≥ 0, the others ≥ 1", o.loadtest, o.clients, o.rounds)
	}
	if set["schedule"] && o.sampler != "consistency" {
		return nil, fmt.Errorf("-schedule %s: only -sampler consistency takes a schedule", o.schedule)
	}
	if _, err := parseSampler(o.sampler, o.schedule); err != nil {
		return nil, err
	}
	return &o, nil
}

// parseSampler is the -sampler flag's sampler, with -schedule for the
// consistency sampler.
func parseSampler(name, schedule string) (osv.Sampler, error) {
	sampler, err := osv.SamplerByName(name, schedule)
	if err != nil {
		return nil, fmt.Errorf("-%w", err)
	}
	return sampler, nil
}

// run parses the flags, loads the pipeline and serves until ctx is done
// (the signal), then shuts down gracefully and returns nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "", log.LstdFlags)
	t0 := time.Now()
	p, what, err := buildPipeline(o)
	if err != nil {
		return err
	}
	logger.Printf("loaded %s on %s (%s) in %.1fs", what, o.device, o.dtype, time.Since(t0).Seconds())
	s, err := newServer(p, serverConfigFrom(o, p), logger)
	if err != nil {
		p.Close()
		return err
	}
	if o.loadtest > 0 {
		return s.selfLoadTest(ctx, o, stdout)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		s.close()
		return err
	}
	logger.Printf("listening on http://%s/ (sampler %s, queue %d, workers %d)", ln.Addr(), o.sampler, o.queue, o.workers)
	return s.serve(ctx, ln, o.shutdownTimeout)
}

// buildPipeline loads -model with the student's options, or builds the
// full-size random models for -random; what names it for the log.
func buildPipeline(o *options) (*osv.Pipeline, string, error) {
	if o.random {
		p, err := randomPipeline(o.device, o.dtype)
		return p, "SVD's full-size models with random weights", err
	}
	opts := []osv.Option{osv.WithDevice(o.device), osv.WithDType(o.dtype)}
	what := o.model
	if o.unet != "" {
		opts = append(opts, osv.WithUNet(o.unet))
		what += " with the UNet " + o.unet
	}
	if o.lora != "" {
		opts = append(opts, osv.WithLoRA(o.lora))
		what += " with the LoRA " + o.lora
	}
	p, err := osv.LoadPipeline(o.model, opts...)
	return p, what, err
}

// serve answers on ln until ctx is done, then shuts down: new requests are
// refused, in-flight ones get grace to finish, then their work is
// cancelled; the workers stop and the pipeline is closed.
func (s *server) serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: s.log}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		s.close()
		return err
	case <-ctx.Done():
	}
	s.log.Printf("shutting down: finishing in-flight work (at most %s)", grace)
	s.drain(hs, grace)
	<-served
	s.log.Printf("stopped")
	return nil
}

// drain stops hs gracefully: it refuses new work, waits up to grace for
// the requests in flight, cancels what is left, and closes the server.
func (s *server) drain(hs *http.Server, grace time.Duration) {
	s.draining.Store(true)
	shut := make(chan error, 1)
	go func() { shut <- hs.Shutdown(context.Background()) }()
	select {
	case <-shut:
	case <-time.After(grace):
		s.log.Printf("shutdown: %s passed, cancelling the work in flight", grace)
		s.stop(errShutdown)
		select {
		case <-shut:
		case <-time.After(10 * time.Second):
			hs.Close()
			<-shut
		}
	}
	s.close()
}
