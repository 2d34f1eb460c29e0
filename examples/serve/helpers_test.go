package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image"
	"io"
	"log"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/osv"
)

// fixtureArgs are the flags that serve the fixture pipeline at its size.
func fixtureArgs(extra ...string) []string {
	return append([]string{"-model", fixture.Path("pipeline"), "-width", "128", "-height", "64", "-frames", "3", "-steps", "1"}, extra...)
}

// testServer is a server on the fixture pipeline, closed with the test;
// args are flags besides fixtureArgs', edit changes the config after.
func testServer(t *testing.T, args []string, edit func(*serverConfig)) *server {
	t.Helper()
	o, err := parseFlags(fixtureArgs(args...), io.Discard)
	require.NoError(t, err)
	p, _, err := buildPipeline(o)
	require.NoError(t, err)
	cfg := serverConfigFrom(o, p)
	cfg.keepalive = 50 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	s, err := newServer(p, cfg, log.New(io.Discard, "", 0))
	require.NoError(t, err)
	t.Cleanup(s.close)
	return s
}

// listen serves s through httptest, closed with the test (its work
// cancelled first, so that a failed test does not wait on it).
func listen(t *testing.T, s *server) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(s.handler())
	t.Cleanup(func() {
		s.stop(errShutdown)
		hs.Close()
	})
	return hs
}

// client is the tests' HTTP client: a request that hangs fails the test
// in a minute rather than holding it.
var client = &http.Client{Timeout: time.Minute}

// gate is a generateFunc in front of the real one: each call announces
// itself on started (with its context) and waits for release (or its
// context) before generating; hold makes calls return their context's
// error instead of generating once released by it.
type gate struct {
	real    generateFunc
	started chan context.Context
	release chan struct{}
	mu      sync.Mutex
	calls   int
	opts    []osv.GenerateOptions
	videos  []*osv.Video // what the real calls returned
}

func newGate(s *server) *gate {
	g := &gate{real: s.generate, started: make(chan context.Context, 64), release: make(chan struct{})}
	s.generate = g.generate
	return g
}

func (g *gate) generate(ctx context.Context, img image.Image, o osv.GenerateOptions) (*osv.Video, error) {
	g.mu.Lock()
	g.calls++
	g.opts = append(g.opts, o)
	g.mu.Unlock()
	g.started <- ctx
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	v, err := g.real(ctx, img, o)
	if v != nil {
		g.mu.Lock()
		g.videos = append(g.videos, v)
		g.mu.Unlock()
	}
	return v, err
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

// waitStarted waits for the next call to reach the gate.
func (g *gate) waitStarted(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-g.started:
		return ctx
	case <-time.After(20 * time.Second):
		t.Fatal("no generation started")
		return nil
	}
}

// fixtureImage is the fixture's conditioning picture.
func fixtureImage(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	return b
}

// formBody is a multipart body with the picture (when not nil) under
// "image" and the fields, in the order given (name, value, name, ...).
func formBody(t *testing.T, img []byte, kv ...string) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if img != nil {
		fw, err := mw.CreateFormFile("image", "picture.png")
		require.NoError(t, err)
		fw.Write(img)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		require.NoError(t, mw.WriteField(kv[i], kv[i+1]))
	}
	require.NoError(t, mw.Close())
	return &b, mw.FormDataContentType()
}

// postForm sends the form to /v1/generate with ctx.
func postForm(ctx context.Context, t *testing.T, url string, img []byte, kv ...string) (*http.Response, []byte, error) {
	t.Helper()
	body, ctype := formBody(t, img, kv...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/generate", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", ctype)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// mustPost is postForm that must get an answer.
func mustPost(t *testing.T, url string, img []byte, kv ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := postForm(context.Background(), t, url, img, kv...)
	require.NoError(t, err)
	return resp, b
}

// errorOf is the message of a JSON error answer.
func errorOf(t *testing.T, b []byte) string {
	t.Helper()
	var e struct{ Error string }
	require.NoError(t, json.Unmarshal(b, &e), string(b))
	require.NotEmpty(t, e.Error, string(b))
	return e.Error
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data jobView
	raw  string
}

// readEvents reads events from an event stream until one named done or
// failed (or the stream ends), sending each on the channel as it comes.
func readEvents(t *testing.T, body io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.raw = strings.TrimPrefix(line, "data: ")
			if err := json.Unmarshal([]byte(ev.raw), &ev.data); err != nil {
				t.Errorf("event data %q: %v", ev.raw, err)
				return
			}
		case line == "" && ev.name != "":
			out <- ev
			if ev.name == "done" || ev.name == "failed" {
				return
			}
			ev = sseEvent{}
		}
	}
}

// openEvents opens a job's event stream with ctx.
func openEvents(ctx context.Context, t *testing.T, url, id string) (*http.Response, chan sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/generate/"+id+"/events", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	ch := make(chan sseEvent, 64)
	go readEvents(t, resp.Body, ch)
	return resp, ch
}

// submit posts an async job and returns its id.
func submit(t *testing.T, url string, kv ...string) string {
	t.Helper()
	resp, b := mustPost(t, url, fixtureImage(t), append([]string{"async", "1"}, kv...)...)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
	var a struct{ ID, Events, Video string }
	require.NoError(t, json.Unmarshal(b, &a))
	require.Equal(t, "/v1/generate/"+a.ID, resp.Header.Get("Location"))
	require.Equal(t, "/v1/generate/"+a.ID+"/events", a.Events)
	require.Equal(t, "/v1/generate/"+a.ID+"/video", a.Video)
	return a.ID
}

// get fetches url.
func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
