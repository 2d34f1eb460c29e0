package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
)

// browser is headless Chromium driven through the DevTools protocol over
// the pipes of --remote-debugging-pipe (the browser reads commands on
// its fd 3 and writes answers and events on fd 4, each message ending in
// a NUL byte).
type browser struct {
	cmd     *exec.Cmd
	out     io.WriteCloser
	mu      sync.Mutex
	next    int
	waiting map[int]chan cdpMessage
	session string
	done    chan struct{}
	err     error
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// chromium finds the browser, or skips the test saying how to get one.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed: `make deps` installs Debian's chromium package (apt-get install chromium), which the browser test needs")
	return ""
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromium(t)
	toBrowser, commands, err := os.Pipe()
	require.NoError(t, err)
	answers, fromBrowser, err := os.Pipe()
	require.NoError(t, err)
	b := &browser{waiting: map[int]chan cdpMessage{}, out: commands, done: make(chan struct{})}
	b.cmd = exec.Command(bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--remote-debugging-pipe", "--user-data-dir="+t.TempDir(), "--no-first-run", "--no-default-browser-check",
		"--autoplay-policy=no-user-gesture-required", "--mute-audio", "--hide-scrollbars", "about:blank")
	b.cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser}
	var stderr strings.Builder
	b.cmd.Stderr = &stderr
	require.NoError(t, b.cmd.Start())
	toBrowser.Close()
	fromBrowser.Close()
	t.Cleanup(func() {
		b.call("Browser.close", nil, nil)
		commands.Close()
		waited := make(chan error, 1)
		go func() { waited <- b.cmd.Wait() }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			b.cmd.Process.Kill()
			<-waited
		}
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", stderr.String())
		}
	})
	go b.read(answers)
	return b
}

// read dispatches the browser's answers to their calls.
func (b *browser) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	defer close(b.done)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.err = err
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(msg[:len(msg)-1], &m); err != nil {
			b.err = err
			return
		}
		if m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends a command (to the attached page unless it is the browser's)
// and decodes its result into result.
func (b *browser) call(method string, params, result any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpMessage, 1)
	b.waiting[id] = ch
	m := cdpMessage{ID: id, Method: method, Params: params}
	if !strings.HasPrefix(method, "Target.") && !strings.HasPrefix(method, "Browser.") {
		m.SessionID = b.session
	}
	msg, err := json.Marshal(m)
	if err == nil {
		_, err = b.out.Write(append(msg, 0))
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case a := <-ch:
		if a.Error != nil {
			return fmt.Errorf("%s: %s", method, a.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(a.Result, result)
		}
		return nil
	case <-b.done:
		return fmt.Errorf("%s: the browser went away (%v)", method, b.err)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s: no answer in a minute", method)
	}
}

// open makes a page and attaches to it.
func (b *browser) open(t *testing.T) {
	t.Helper()
	var target struct{ TargetID string }
	require.NoError(t, b.call("Target.createTarget", map[string]any{"url": "about:blank"}, &target))
	var attached struct{ SessionID string }
	require.NoError(t, b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached))
	b.session = attached.SessionID
	require.NoError(t, b.call("Page.enable", nil, nil))
	require.NoError(t, b.call("Runtime.enable", nil, nil))
}

// eval runs a JavaScript expression in the page and decodes its value.
func (b *browser) eval(t *testing.T, expr string, v any) {
	t.Helper()
	require.NoError(t, b.tryEval(expr, v))
}

// tryEval is eval that returns its error (while a page loads, its
// context can go away under an expression).
func (b *browser) tryEval(expr string, v any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if v != nil {
		if err := json.Unmarshal(r.Result.Value, v); err != nil {
			return fmt.Errorf("%s: %w (%s)", expr, err, r.Result.Value)
		}
	}
	return nil
}

// pageState is what the test reads off the page while it works.
type pageState struct {
	Ready       bool    `json:"ready"`
	Msg         string  `json:"msg"`
	Bad         bool    `json:"bad"`
	Playing     bool    `json:"playing"`
	Time        float64 `json:"time"`
	VideoWidth  int     `json:"videoWidth"`
	Src         string  `json:"src"`
	Download    string  `json:"download"`
	ScrollWidth int     `json:"scrollWidth"`
	Width       int     `json:"width"`
	Bar         float64 `json:"bar"`
	BarMax      float64 `json:"barMax"`
}

const readState = `(() => {
  const v = document.getElementById("video"), m = document.getElementById("msg"), bar = document.getElementById("bar");
  const de = document.documentElement;
  return {
    ready: document.readyState === "complete" && !!v && !window.osvPreviousPage,
    msg: m ? m.textContent : "", bad: m ? m.classList.contains("bad") : false,
    playing: !!v && !v.hidden && !v.paused && v.readyState >= 2 && v.currentTime > 0,
    time: v ? v.currentTime : 0, videoWidth: v ? v.videoWidth : 0, src: v ? v.currentSrc : "",
    download: (document.getElementById("download") || {}).href || "",
    scrollWidth: de ? de.scrollWidth : 0, width: window.innerWidth,
    bar: bar ? bar.value : 0, barMax: bar ? bar.max : 0,
  };
})()`

// generateInBrowser loads the page at width×height, picks the fixture
// picture, presses Generate and waits for the video to play; it returns
// the screenshot and the messages the page showed on the way.
func generateInBrowser(t *testing.T, b *browser, url string, width, height int, mobile bool, steps int) ([]byte, []string) {
	t.Helper()
	require.NoError(t, b.call("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
	}, nil))
	// The page before carries a mark, so that it is not taken for the new one.
	b.eval(t, "window.osvPreviousPage = true", nil)
	require.NoError(t, b.call("Page.navigate", map[string]any{"url": url}, nil))
	var st pageState
	eventually(t, "the page loaded", func() bool { return b.tryEval(readState, &st) == nil && st.Ready })
	require.Equal(t, "Pick a picture to start.", st.Msg)

	var doc struct{ Root struct{ NodeID int } }
	require.NoError(t, b.call("DOM.getDocument", nil, &doc))
	var input struct{ NodeID int }
	require.NoError(t, b.call("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#file"}, &input))
	require.NotZero(t, input.NodeID, "the page has a file input")
	picture, err := filepath.Abs(fixture.Path("io", "pipeline_input.png"))
	require.NoError(t, err)
	require.NoError(t, b.call("DOM.setFileInputFiles", map[string]any{"files": []string{picture}, "nodeId": input.NodeID}, nil))
	var enabled bool
	eventually(t, "Generate enabled", func() bool {
		b.eval(t, `!document.getElementById("go").disabled && !document.getElementById("preview").hidden`, &enabled)
		return enabled
	})
	b.eval(t, fmt.Sprintf(`document.getElementById("form").elements.steps.value = %d`, steps), nil)
	b.eval(t, `document.getElementById("go").click()`, nil)

	var seen []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		b.eval(t, readState, &st)
		if len(seen) == 0 || seen[len(seen)-1] != st.Msg {
			seen = append(seen, st.Msg)
		}
		require.False(t, st.Bad, "the page shows an error: %s", st.Msg)
		if st.Playing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the video did not play within a minute; the page said %q", seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let it play on a little, so that the screenshot shows a frame.
	time.Sleep(300 * time.Millisecond)
	b.eval(t, readState, &st)
	require.True(t, st.Playing)
	require.Equal(t, "Done.", st.Msg)
	require.Equal(t, 128, st.VideoWidth, "the video has the requested width")
	require.Contains(t, st.Src, "/v1/generate/")
	require.Equal(t, st.Src, st.Download, "the download link is the video")
	require.Equal(t, st.BarMax, st.Bar, "the progress bar is full")
	require.LessOrEqual(t, st.ScrollWidth, st.Width, "nothing sticks out sideways at %d px", width)
	var inView bool
	b.eval(t, `(() => { const r = document.getElementById("video").getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight && r.width > 0; })()`, &inView)
	require.True(t, inView, "the video is on the screen at %d×%d", width, height)
	stepped := false
	for _, m := range seen {
		stepped = stepped || strings.HasPrefix(m, "Step ") && strings.HasSuffix(m, fmt.Sprintf(" of %d.", steps))
	}
	require.True(t, stepped, "the page showed the steps: %q", seen)

	var shot struct{ Data string }
	require.NoError(t, b.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot))
	img, err := base64.StdEncoding.DecodeString(shot.Data)
	require.NoError(t, err)
	cfg, err := png.DecodeConfig(strings.NewReader(string(img)))
	require.NoError(t, err)
	require.Equal(t, width, cfg.Width)
	return img, seen
}

// TestBrowser runs the page in headless Chromium at a desktop and at a
// phone width: it picks the fixture picture, generates, waits for the
// video to play and takes a screenshot of each. OSV_SERVE_SCREENSHOT
// names where the desktop one goes (docs/serve.png keeps it), and
// OSV_SERVE_SCREENSHOT_PHONE the phone one; by default both go to the
// test's temporary folder.
func TestBrowser(t *testing.T) {
	chromium(t)
	if !hasFFmpeg() {
		t.Skip("ffmpeg is not installed: the page plays MP4, which the service writes through ffmpeg (`make deps` installs it)")
	}
	s := testServer(t, []string{"-sampler", "tts"}, nil)
	hs := listen(t, s)
	b := startBrowser(t)
	b.open(t)
	var mp4 string
	b.eval(t, `document.createElement("video").canPlayType('video/mp4; codecs="avc1.42E01E"')`, &mp4)
	require.NotEmpty(t, mp4, "this chromium cannot play H.264 MP4")

	for _, c := range []struct {
		name          string
		width, height int
		mobile        bool
		env           string
		steps         int
	}{
		{"desktop", 1100, 700, false, "OSV_SERVE_SCREENSHOT", 3},
		{"phone", 390, 844, true, "OSV_SERVE_SCREENSHOT_PHONE", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, seen := generateInBrowser(t, b, hs.URL+"/", c.width, c.height, c.mobile, c.steps)
			t.Logf("the page said %q", seen)
			path := os.Getenv(c.env)
			if path == "" {
				path = filepath.Join(t.TempDir(), c.name+".png")
			}
			require.NoError(t, os.WriteFile(path, img, 0o644))
			t.Logf("screenshot: %s (%d KiB)", path, len(img)>>10)
		})
	}
}
