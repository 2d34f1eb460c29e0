package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
)

func hasFFmpeg() bool {
	_, err := exec.LookPath("ffmpeg")
	return err == nil
}

func TestGenerateAnswersWithTheVideo(t *testing.T) {
	s := testServer(t, nil, nil)
	g := newGate(s)
	close(g.release)
	hs := listen(t, s)
	live := torch.Live()

	resp, b := mustPost(t, hs.URL, fixtureImage(t), "format", "gif", "steps", "2", "seed", "7", "frames", "2", "motion_bucket", "40", "fps", "5")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	require.Equal(t, strconv.Itoa(len(b)), resp.Header.Get("Content-Length"))
	require.Contains(t, resp.Header.Get("Content-Disposition"), "osv-128x64-2frames-seed7.gif")
	secs, err := strconv.ParseFloat(resp.Header.Get("X-Generation-Seconds"), 64)
	require.NoError(t, err)
	require.Greater(t, secs, 0.0)
	clip, err := gif.DecodeAll(bytes.NewReader(b))
	require.NoError(t, err)
	require.Len(t, clip.Image, 2)
	require.Equal(t, 128, clip.Config.Width)
	require.Equal(t, 64, clip.Config.Height)
	require.Equal(t, 20, clip.Delay[0], "5 fps is 20 hundredths a frame")

	// The fields reach the pipeline.
	require.Len(t, g.opts, 1)
	o := g.opts[0]
	require.Equal(t, []int{2, 2, 128, 64, 40, 5}, []int{o.NumInferenceSteps, o.NumFrames, o.Width, o.Height, o.MotionBucketID, o.FPS})
	require.Equal(t, uint64(7), o.Seed)
	require.IsType(t, osv.EulerSampler{}, o.Sampler)
	require.Equal(t, live, torch.Live(), "a generation leaves no native tensor behind")
	eventually(t, "the worker done", func() bool { _, r := s.q.depth(); return r == 0 })
	require.Len(t, g.videos, 1)
	require.Nil(t, *g.videos[0].Tensor.T, "the service released the result's tensor at once, not leaving it to gotorch's finalizer")

	// Fields left out take the service's defaults: the fixture's size,
	// one step, MP4 where ffmpeg is there.
	resp, b = mustPost(t, hs.URL, fixtureImage(t))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	o = g.opts[1]
	require.Equal(t, []int{1, 3, 128, 64, 127, 7}, []int{o.NumInferenceSteps, o.NumFrames, o.Width, o.Height, o.MotionBucketID, o.FPS})
	if hasFFmpeg() {
		require.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))
		require.Equal(t, "ftyp", string(b[4:8]), "an MP4 starts with its ftyp box")
	} else {
		require.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	}
}

func TestGenerateIsDeterministicBySeed(t *testing.T) {
	s := testServer(t, nil, nil)
	hs := listen(t, s)
	video := func(seed string) []byte {
		resp, b := mustPost(t, hs.URL, fixtureImage(t), "format", "gif", "seed", seed)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return b
	}
	a, b, c := video("3"), video("3"), video("4")
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
}

func TestGenerateTakesAJPEGOfAnotherSize(t *testing.T) {
	s := testServer(t, nil, nil)
	hs := listen(t, s)
	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var jb bytes.Buffer
	require.NoError(t, jpeg.Encode(&jb, img, nil))
	resp, b := mustPost(t, hs.URL, jb.Bytes(), "format", "gif")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	clip, err := gif.DecodeAll(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, 128, clip.Config.Width)
	require.Equal(t, 64, clip.Config.Height)
}

// pngClaiming is a PNG header that claims w×h pixels (with a valid CRC)
// followed by a 1×1 image's data.
func pngClaiming(t *testing.T, w, h uint32) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))))
	data := b.Bytes()
	binary.BigEndian.PutUint32(data[16:], w)
	binary.BigEndian.PutUint32(data[20:], h)
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	return data
}

func TestGenerateRefusesBadInputBeforeAnyWork(t *testing.T) {
	s := testServer(t, []string{"-max-upload-mb", "1"}, func(c *serverConfig) { c.mp4 = false })
	g := newGate(s)
	hs := listen(t, s)
	img := fixtureImage(t)
	var gray bytes.Buffer
	require.NoError(t, png.Encode(&gray, image.NewGray(image.Rect(0, 0, 16, 16))))
	for _, c := range []struct {
		name   string
		img    []byte
		fields []string
		status int
		want   string
	}{
		{"no image", nil, []string{"steps", "1"}, 400, `no image: send the picture as the form's file field "image"`},
		{"text", []byte("hello, this is not a picture\n"), nil, 400, `image "picture.png": not a PNG or JPEG picture (its content looks like text/plain`},
		{"gif", gifBytes(t), nil, 400, `not a PNG or JPEG picture (its content looks like image/gif)`},
		{"empty", []byte{}, nil, 400, `image "picture.png": the file is empty`},
		{"broken header", pngMagic, nil, 400, `image "picture.png": corrupt or truncated PNG`},
		{"truncated", img[:200], nil, 400, `image "picture.png": corrupt or truncated PNG image`},
		{"huge claim", pngClaiming(t, 100000, 100000), nil, 400, "PNG of 100000×100000 pixels, more than the limit of 50 megapixels"},
		{"zero size", pngClaiming(t, 0, 5), nil, 400, `image "picture.png": corrupt or truncated PNG`},
		{"width not a multiple", img, []string{"width", "100"}, 400, "width 100: want a multiple of 64"},
		{"width too small", img, []string{"width", "8"}, 400, "width 8: want 64 to 9216"},
		{"width not a number", img, []string{"width", "wide"}, 400, `width "wide": not an integer`},
		{"too many pixels", img, []string{"width", "1024", "height", "1024"}, 400, "size 1024×1024: 1048576 pixels, more than the limit of 589824 (-max-pixels)"},
		{"height negative", img, []string{"height", "-64"}, 400, "height -64: want 64 to 9216"},
		{"steps 0", img, []string{"steps", "0"}, 400, "steps 0: want 1 to 50 (-max-steps)"},
		{"steps many", img, []string{"steps", "51"}, 400, "steps 51: want 1 to 50 (-max-steps)"},
		{"frames", img, []string{"frames", "4"}, 400, "frames 4: want 1 to 3 (-max-frames)"},
		{"motion", img, []string{"motion_bucket", "256"}, 400, "motion_bucket 256: want 0 to 255"},
		{"fps", img, []string{"fps", "0"}, 400, "fps 0: want 1 to 60"},
		{"seed", img, []string{"seed", "-1"}, 400, `seed "-1": want an integer from 0 to 18446744073709551615`},
		{"format", img, []string{"format", "webm"}, 400, `format "webm": want gif or mp4`},
		{"mp4 without ffmpeg", img, []string{"format", "mp4"}, 400, "format mp4: the server has no ffmpeg program to write MP4; ask for format=gif"},
		{"async", img, []string{"async", "maybe"}, 400, `async "maybe": want 1 or 0`},
		{"unknown field", img, []string{"colour", "red"}, 400, `unknown field "colour"; the fields are image, steps, seed`},
		{"twice", img, []string{"steps", "1", "steps", "2"}, 400, "field steps is given twice"},
		{"long field", img, []string{"seed", strings.Repeat("1", 65)}, 400, "field seed is longer than 64 bytes"},
		{"too large", bytes.Repeat([]byte{1}, 2<<20), nil, 413, "the upload of 2.0 MiB is larger than the limit of 1 MiB (-max-upload-mb)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, b := mustPost(t, hs.URL, c.img, c.fields...)
			require.Equal(t, c.status, resp.StatusCode, string(b))
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			require.Contains(t, errorOf(t, b), c.want)
			require.NotContains(t, string(b), "osv-serve-upload", "the message names the upload, not the server's file")
		})
	}
	// A body without a length is cut at the limit too.
	body, ctype := formBody(t, bytes.Repeat([]byte{1}, 2<<20))
	req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/generate", io.MultiReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ctype)
	require.EqualValues(t, 0, req.ContentLength)
	resp, err := client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(b))
	require.Contains(t, errorOf(t, b), "larger than the limit of 1 MiB")

	// Bodies that are not multipart forms.
	for _, ct := range []string{"application/json", "", "multipart/form-data", "multipart/mixed; boundary=x"} {
		req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/generate", strings.NewReader("{}"))
		require.NoError(t, err)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, ct)
		require.Contains(t, errorOf(t, b), "send a multipart/form-data body")
	}
	// A multipart body that breaks off.
	req, err = http.NewRequest(http.MethodPost, hs.URL+"/v1/generate", strings.NewReader("--x\r\nContent-Disposition: form-data; name=\"steps\"\r\n\r\n1"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	resp, err = client.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, errorOf(t, b), "reading the form")

	require.Zero(t, g.count(), "nothing refused reached the pipeline")
	waiting, running := s.q.depth()
	require.Zero(t, waiting+running, "nothing refused holds a place in the queue")
}

func gifBytes(t *testing.T) []byte {
	var b bytes.Buffer
	require.NoError(t, gif.Encode(&b, image.NewPaletted(image.Rect(0, 0, 2, 2), []color.Color{color.Black, color.White}), nil))
	return b.Bytes()
}

func TestRoutesAnswerOtherMethodsAndPathsClearly(t *testing.T) {
	hs := listen(t, testServer(t, nil, nil))
	for _, c := range []struct {
		method, path, allow string
	}{
		{"GET", "/v1/generate", "POST"},
		{"PUT", "/v1/generate", "POST"},
		{"POST", "/", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
		{"POST", "/v1/generate/abc", "GET, HEAD, DELETE"},
		{"POST", "/v1/generate/abc/events", "GET, HEAD"},
		{"DELETE", "/v1/generate/abc/video", "GET, HEAD"},
	} {
		req, err := http.NewRequest(c.method, hs.URL+c.path, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, c.method+" "+c.path)
		require.Equal(t, c.allow, resp.Header.Get("Allow"))
		require.Equal(t, fmt.Sprintf("method %s is not allowed on %s; allowed: %s", c.method, c.path, c.allow), errorOf(t, b))
	}
	for _, path := range []string{"/nope", "/v1", "/v1/generate/a/b/c", "/index.html"} {
		resp, b := get(t, hs.URL+path)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		require.Contains(t, errorOf(t, b), "no endpoint "+path)
	}
	for _, path := range []string{"/v1/generate/nope", "/v1/generate/nope/events", "/v1/generate/nope/video"} {
		resp, b := get(t, hs.URL+path)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		require.Contains(t, errorOf(t, b), `no job "nope": unknown, or its result was dropped (results are kept for 2m0s)`)
	}
}

func TestPageCarriesTheServiceSettings(t *testing.T) {
	s := testServer(t, nil, nil)
	hs := listen(t, s)
	resp, b := get(t, hs.URL+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	page := string(b)
	for _, want := range []string{
		`name="width" min="64" step="64" value="128"`, `name="height" min="64" step="64" value="64"`,
		`name="frames" min="1" max="3" value="3"`, `name="steps" min="1" max="50" value="1"`,
		`data-multiple="64" data-max-pixels="589824"`, `name="motion_bucket" min="0" max="255" value="127"`,
		"up to 20 MiB", "pipeline · sampler euler", `<meta name="viewport"`,
	} {
		require.Contains(t, page, want)
	}
	require.Equal(t, s.cfg.mp4, strings.Contains(page, `<option value="mp4">`))
	req, err := http.NewRequest(http.MethodHead, hs.URL+"/", nil)
	require.NoError(t, err)
	head, err := client.Do(req)
	require.NoError(t, err)
	head.Body.Close()
	require.Equal(t, http.StatusOK, head.StatusCode)
}

func TestQueueFullAnswers503WithRetryAfter(t *testing.T) {
	s := testServer(t, []string{"-queue", "1", "-workers", "1"}, nil)
	g := newGate(s)
	hs := listen(t, s)
	type answer struct {
		code int
		body []byte
	}
	answers := make(chan answer, 2)
	send := func() {
		resp, b, err := postForm(context.Background(), t, hs.URL, fixtureImage(t), "format", "gif")
		if err != nil {
			t.Error(err)
			answers <- answer{}
			return
		}
		answers <- answer{resp.StatusCode, b}
	}
	go send()
	g.waitStarted(t) // the first runs
	go send()
	eventually(t, "a request waiting", func() bool { w, _ := s.q.depth(); return w == 1 })

	resp, b := mustPost(t, hs.URL, fixtureImage(t))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "the queue is full (1 waiting, 1 running); retry later", errorOf(t, b))
	after, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, after, 1)

	close(g.release)
	for range 2 {
		a := <-answers
		require.Equal(t, http.StatusOK, a.code, string(a.body))
	}
	// The line is free again.
	resp, b = mustPost(t, hs.URL, fixtureImage(t), "format", "gif")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
}

func TestQueueOfZeroTakesOneRequestPerFreeWorker(t *testing.T) {
	s := testServer(t, []string{"-queue", "0", "-workers", "1"}, nil)
	g := newGate(s)
	hs := listen(t, s)
	done := make(chan int, 1)
	go func() {
		resp, _, err := postForm(context.Background(), t, hs.URL, fixtureImage(t), "format", "gif")
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		done <- resp.StatusCode
	}()
	g.waitStarted(t)
	resp, _ := mustPost(t, hs.URL, fixtureImage(t))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	close(g.release)
	require.Equal(t, http.StatusOK, <-done)
}

func TestClientThatLeavesCancelsItsGeneration(t *testing.T) {
	s := testServer(t, []string{"-workers", "1"}, nil)
	g := newGate(s)
	hs := listen(t, s)

	// Running: the request's context reaches Generate.
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { _, _, err := postForm(ctx, t, hs.URL, fixtureImage(t)); errs <- err }()
	gctx := g.waitStarted(t)
	require.NoError(t, gctx.Err())
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	select {
	case <-gctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the generation's context was not cancelled when its client left")
	}
	require.ErrorIs(t, context.Cause(gctx), errClientGone)

	// Waiting: a request whose client leaves gives its place back at once.
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	go postForm(ctx1, t, hs.URL, fixtureImage(t))
	g.waitStarted(t)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { _, _, err := postForm(ctx2, t, hs.URL, fixtureImage(t)); errs <- err }()
	eventually(t, "a request waiting", func() bool { w, _ := s.q.depth(); return w == 1 })
	cancel2()
	<-errs
	eventually(t, "the place given back", func() bool { w, _ := s.q.depth(); return w == 0 })
	cancel1()
	eventually(t, "the worker free", func() bool { _, r := s.q.depth(); return r == 0 })
	require.Equal(t, 2, g.count(), "the request that left while waiting never ran")

	metric := func(name string) float64 {
		_, b := get(t, hs.URL+"/metrics")
		return parseMetrics(t, string(b))[name]
	}
	eventually(t, "three requests counted as left", func() bool {
		return metric(`osv_http_requests_total{route="/v1/generate",code="499"}`) == 3
	})
	require.Equal(t, 2.0, metric(`osv_generations_total{outcome="cancelled"}`))
}

func TestClientThatLeavesStopsTheSamplerBetweenSteps(t *testing.T) {
	s := testServer(t, []string{"-workers", "1"}, nil)
	real := s.generate
	type result struct {
		steps int
		err   error
	}
	results := make(chan result, 1)
	stepped := make(chan struct{}, 64)
	s.generate = func(ctx context.Context, img image.Image, o osv.GenerateOptions) (*osv.Video, error) {
		n := 0
		progress := o.Progress
		o.Progress = func(step, total int) {
			n = step
			progress(step, total)
			stepped <- struct{}{}
		}
		v, err := real(ctx, img, o)
		if v != nil {
			osv.Release(v.Tensor)
		}
		results <- result{n, err}
		return v, err
	}
	hs := listen(t, s)
	live := torch.Live()
	ctx, cancel := context.WithCancel(context.Background())
	go postForm(ctx, t, hs.URL, fixtureImage(t), "steps", "50")
	<-stepped
	cancel()
	r := <-results
	require.ErrorIs(t, r.err, context.Canceled)
	require.Less(t, r.steps, 50, "the sampler stopped before its last step")
	eventually(t, "the worker free", func() bool { _, r := s.q.depth(); return r == 0 })
	require.Equal(t, live, torch.Live(), "a cancelled generation leaves no native tensor behind")
}

func TestGenerationFailureAndTimeout(t *testing.T) {
	s := testServer(t, nil, func(c *serverConfig) { c.timeout = 100 * time.Millisecond })
	s.generate = func(ctx context.Context, img image.Image, o osv.GenerateOptions) (*osv.Video, error) {
		if o.Seed == 1 {
			return nil, errors.New("osv: something broke\nsecond line")
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	hs := listen(t, s)
	resp, b := mustPost(t, hs.URL, fixtureImage(t), "seed", "1")
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Equal(t, "generation failed: osv: something broke", errorOf(t, b))
	resp, b = mustPost(t, hs.URL, fixtureImage(t), "seed", "2")
	require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	require.Equal(t, "cancelled: the request ran past the service's limit of 100ms", errorOf(t, b))
}

func TestAsyncJobReportsProgressThenServesTheVideo(t *testing.T) {
	s := testServer(t, nil, nil)
	hs := listen(t, s)
	id := submit(t, hs.URL, "steps", "3", "format", "gif")
	_, events := openEvents(context.Background(), t, hs.URL, id)
	var names []string
	var steps []int
	var last sseEvent
	for ev := range events {
		names = append(names, ev.name)
		if ev.name == "progress" && ev.data.Total > 0 {
			require.Equal(t, 3, ev.data.Total)
			steps = append(steps, ev.data.Step)
		}
		last = ev
	}
	require.Equal(t, "done", last.name, names)
	require.Equal(t, []int{1, 2, 3}, steps, "every step is reported, in order")
	require.Equal(t, "encoding", names[len(names)-2])
	require.Equal(t, "/v1/generate/"+id+"/video", last.data.Video)
	require.Equal(t, "image/gif", last.data.Type)
	require.Greater(t, last.data.Seconds, 0.0)

	resp, b := get(t, hs.URL+last.data.Video)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "image/gif", resp.Header.Get("Content-Type"))
	require.Len(t, b, last.data.Bytes)
	clip, err := gif.DecodeAll(bytes.NewReader(b))
	require.NoError(t, err)
	require.Len(t, clip.Image, 3)

	// Ranges, as video elements ask.
	resp, part := get(t, hs.URL+last.data.Video, "Range", "bytes=0-9")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, b[:10], part)
	require.Equal(t, fmt.Sprintf("bytes 0-9/%d", len(b)), resp.Header.Get("Content-Range"))

	resp, b = get(t, hs.URL+"/v1/generate/"+id)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var v jobView
	require.NoError(t, json.Unmarshal(b, &v))
	require.Equal(t, "done", v.State)

	req, err := http.NewRequest(http.MethodHead, hs.URL+"/v1/generate/"+id+"/events", nil)
	require.NoError(t, err)
	head, err := client.Do(req)
	require.NoError(t, err)
	head.Body.Close()
	require.Equal(t, "text/event-stream", head.Header.Get("Content-Type"))

	// A stream opened after the end gives the end at once.
	_, again := openEvents(context.Background(), t, hs.URL, id)
	ev := <-again
	require.Equal(t, "done", ev.name)
}

func TestAsyncJobShowsItsPlaceInTheQueue(t *testing.T) {
	s := testServer(t, []string{"-workers", "1"}, nil)
	g := newGate(s)
	hs := listen(t, s)
	first := submit(t, hs.URL, "format", "gif")
	_, firstEvents := openEvents(context.Background(), t, hs.URL, first)
	g.waitStarted(t)
	second := submit(t, hs.URL, "format", "gif")
	third := submit(t, hs.URL, "format", "gif")
	_, secondEvents := openEvents(context.Background(), t, hs.URL, second)
	_, thirdEvents := openEvents(context.Background(), t, hs.URL, third)
	ev := <-thirdEvents
	require.Equal(t, "queued", ev.name)
	require.Equal(t, 1, ev.data.Position, ev.raw)
	ev = <-secondEvents
	require.Equal(t, "queued", ev.name)
	require.Zero(t, ev.data.Position, ev.raw)

	// The second is cancelled: the third moves up.
	req, err := http.NewRequest(http.MethodDelete, hs.URL+"/v1/generate/"+second, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var v jobView
	require.NoError(t, json.Unmarshal(b, &v))
	require.Equal(t, "failed", v.State)
	require.Equal(t, http.StatusGone, v.Status)
	ev = <-secondEvents
	require.Equal(t, "failed", ev.name)
	require.Equal(t, "cancelled by DELETE", ev.data.Error)
	ev = <-thirdEvents
	require.Equal(t, "queued", ev.name)
	require.Zero(t, ev.data.Position, ev.raw)
	resp, b = get(t, hs.URL+"/v1/generate/"+second+"/video")
	require.Equal(t, http.StatusGone, resp.StatusCode)
	require.Equal(t, "cancelled by DELETE", errorOf(t, b))
	resp, b = get(t, hs.URL+"/v1/generate/"+third+"/video")
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Equal(t, fmt.Sprintf("job %s is queued, not finished: follow /v1/generate/%s/events", third, third), errorOf(t, b))

	close(g.release)
	for _, events := range []chan sseEvent{firstEvents, thirdEvents} {
		var last sseEvent
		for ev := range events {
			last = ev
		}
		require.Equal(t, "done", last.name, last.raw)
	}
}

func TestAsyncJobNoOneWatchesIsCancelled(t *testing.T) {
	s := testServer(t, []string{"-workers", "1"}, func(c *serverConfig) { c.watchGrace = 150 * time.Millisecond })
	g := newGate(s)
	hs := listen(t, s)

	// Never watched.
	id := submit(t, hs.URL)
	gctx := g.waitStarted(t)
	<-gctx.Done()
	require.ErrorIs(t, context.Cause(gctx), errUnwatched)
	eventually(t, "the job failed", func() bool {
		resp, _ := get(t, hs.URL+"/v1/generate/"+id+"/video")
		return resp.StatusCode == http.StatusGone
	})
	_, b := get(t, hs.URL+"/v1/generate/"+id+"/video")
	require.Equal(t, "cancelled: no client followed the job's events for 150ms", errorOf(t, b))

	// Watched, then the stream closes: cancelled after the grace period.
	id = submit(t, hs.URL)
	ctx, cancel := context.WithCancel(context.Background())
	_, events := openEvents(ctx, t, hs.URL, id)
	gctx = g.waitStarted(t)
	<-events
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, gctx.Err(), "a watched job runs on past the grace period")
	cancel()
	select {
	case <-gctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a job whose watcher left was not cancelled")
	}
	require.ErrorIs(t, context.Cause(gctx), errUnwatched)
}

func TestAsyncResultsAreBounded(t *testing.T) {
	finish := func(t *testing.T, url string) string {
		id := submit(t, url, "format", "gif")
		_, events := openEvents(context.Background(), t, url, id)
		for range events {
		}
		return id
	}
	status := func(t *testing.T, url, id string) int {
		resp, _ := get(t, url+"/v1/generate/"+id+"/video")
		return resp.StatusCode
	}
	t.Run("count", func(t *testing.T) {
		// At most max(4, queue+workers) results are kept: the oldest goes.
		s := testServer(t, []string{"-queue", "1", "-workers", "1"}, nil)
		hs := listen(t, s)
		var ids []string
		for range 5 {
			ids = append(ids, finish(t, hs.URL))
		}
		eventually(t, "the oldest result dropped", func() bool { return status(t, hs.URL, ids[0]) == http.StatusNotFound })
		for _, id := range ids[1:] {
			require.Equal(t, http.StatusOK, status(t, hs.URL, id))
		}
	})
	t.Run("ttl", func(t *testing.T) {
		s := testServer(t, nil, func(c *serverConfig) { c.resultTTL = 200 * time.Millisecond })
		hs := listen(t, s)
		id := finish(t, hs.URL)
		require.Equal(t, http.StatusOK, status(t, hs.URL, id))
		eventually(t, "the result expired", func() bool { return status(t, hs.URL, id) == http.StatusNotFound })
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Empty(t, s.jobs)
		require.Empty(t, s.finished)
	})
}

func TestHealthzAndMetrics(t *testing.T) {
	s := testServer(t, nil, nil)
	hs := listen(t, s)
	resp, b := get(t, hs.URL+"/healthz")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok\n", string(b))

	resp, b = mustPost(t, hs.URL, fixtureImage(t), "format", "gif")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	mustPost(t, hs.URL, fixtureImage(t), "width", "100")
	resp, b = get(t, hs.URL+"/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	m := parseMetrics(t, string(b))
	require.Equal(t, 1.0, m[`osv_http_requests_total{route="/v1/generate",code="200"}`])
	require.Equal(t, 1.0, m[`osv_http_requests_total{route="/v1/generate",code="400"}`])
	require.Equal(t, 1.0, m[`osv_http_requests_total{route="/healthz",code="200"}`])
	require.Equal(t, 1.0, m[`osv_generations_total{outcome="ok"}`])
	require.Equal(t, 1.0, m["osv_generation_seconds_count"])
	require.Greater(t, m["osv_generation_seconds_sum"], 0.0)
	require.Equal(t, 1.0, m[`osv_generation_seconds_bucket{le="+Inf"}`])
	require.Equal(t, 2.0, m["osv_request_seconds_count"])
	prev := 0.0
	for _, le := range latencyBuckets {
		v, ok := m[fmt.Sprintf(`osv_generation_seconds_bucket{le="%s"}`, strconv.FormatFloat(le, 'g', -1, 64))]
		require.True(t, ok, le)
		require.GreaterOrEqual(t, v, prev, "buckets are cumulative")
		prev = v
	}
	require.Equal(t, 0.0, m["osv_queue_depth"])
	require.Equal(t, 8.0, m["osv_queue_capacity"])
	require.Equal(t, 2.0, m["osv_workers"])
	require.Equal(t, float64(torch.Live()), m["osv_live_tensors"])
	require.Greater(t, m["osv_live_tensors"], 0.0, "the weights are live tensors")
	require.Greater(t, m["process_resident_memory_bytes"], float64(1<<20))
	_, gpu := m["osv_gpu_memory_allocated_bytes"]
	require.False(t, gpu, "no GPU figures on the CPU")

	s.draining.Store(true)
	resp, b = get(t, hs.URL+"/healthz")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "shutting down\n", string(b))
	resp, b = mustPost(t, hs.URL, fixtureImage(t))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "the service is shutting down", errorOf(t, b))
	require.Equal(t, "5", resp.Header.Get("Retry-After"))
}

// parseMetrics reads the text exposition format: every sample line is a
// name (with labels) and a number, and every name is declared.
func parseMetrics(t *testing.T, text string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(rest)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		name := line[:i]
		base := name
		if j := strings.IndexByte(base, '{'); j >= 0 {
			base = base[:j]
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(base, suffix); ok && typed[b] {
				base = b
			}
		}
		require.True(t, typed[base], "%s has no # TYPE line", name)
		m[name] = v
	}
	return m
}

func TestShutdownLetsInFlightWorkFinish(t *testing.T) {
	s := testServer(t, []string{"-workers", "1"}, nil)
	g := newGate(s)
	url, stop, served := serveOn(t, s, 20*time.Second)
	answer := make(chan int, 1)
	go func() {
		resp, b, err := postForm(context.Background(), t, url, fixtureImage(t), "format", "gif")
		if err != nil {
			t.Error(err)
			answer <- 0
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("in flight: %d %s", resp.StatusCode, b)
		}
		answer <- resp.StatusCode
	}()
	g.waitStarted(t)
	stop()
	eventually(t, "draining", s.draining.Load)
	// New connections are refused once the listener closes.
	eventually(t, "the listener closed", func() bool {
		_, _, err := postForm(context.Background(), t, url, fixtureImage(t))
		return err != nil
	})
	close(g.release)
	require.Equal(t, http.StatusOK, <-answer)
	require.NoError(t, <-served)
	require.True(t, s.pipe.UNet.Closed(), "the pipeline is closed")
}

func TestShutdownCancelsWorkPastTheDeadline(t *testing.T) {
	s := testServer(t, []string{"-workers", "1"}, nil)
	g := newGate(s)
	url, stop, served := serveOn(t, s, 200*time.Millisecond)
	type answer struct {
		code int
		body []byte
	}
	answers := make(chan answer, 1)
	go func() {
		resp, b, err := postForm(context.Background(), t, url, fixtureImage(t))
		if err != nil {
			t.Error(err)
			answers <- answer{}
			return
		}
		answers <- answer{resp.StatusCode, b}
	}()
	gctx := g.waitStarted(t)
	t0 := time.Now()
	stop()
	a := <-answers
	require.Equal(t, http.StatusServiceUnavailable, a.code)
	require.Equal(t, "cancelled: the service is shutting down", errorOf(t, a.body))
	require.ErrorIs(t, context.Cause(gctx), errShutdown)
	require.NoError(t, <-served)
	require.Less(t, time.Since(t0), 5*time.Second)
}

// serveOn serves s on a loopback port as the command does; stop is the
// signal, served what serve returned.
func serveOn(t *testing.T, s *server, grace time.Duration) (url string, stop func(), served chan error) {
	t.Helper()
	ln, err := listenLoopback()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served = make(chan error, 1)
	go func() { served <- s.serve(ctx, ln, grace) }()
	t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, served
}
