package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
)

// TestMain runs the test binary as the command itself when asked to, so
// that a test can send it signals as a process.
func TestMain(m *testing.M) {
	if os.Getenv("OSV_SERVE_RUN_AS_COMMAND") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFlagsAreChecked(t *testing.T) {
	model := fixture.Path("pipeline")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "-model is required (or -random; see -help)"},
		{[]string{"-random", "-model", model}, "-random builds the models itself: leave out -model, -unet and -lora"},
		{[]string{"-model", model, "-queue", "-1"}, "-queue -1: want 0 or more"},
		{[]string{"-model", model, "-workers", "0"}, "-workers 0: want at least 1"},
		{[]string{"-model", model, "-max-upload-mb", "0"}, "-max-upload-mb 0: want at least 1"},
		{[]string{"-model", model, "-frames", "0"}, "-frames 0: want at least 1"},
		{[]string{"-model", model, "-steps", "-2"}, "-steps -2: want at least 1"},
		{[]string{"-model", model, "-width", "0"}, "-width 0 -height 576: want positive sizes"},
		{[]string{"-model", model, "-max-frames", "0"}, "-max-frames 0: want at least 1"},
		{[]string{"-model", model, "-watch-grace", "0s"}, "-watch-grace and -result-ttl more than 0"},
		{[]string{"-model", model, "-sampler", "ddim"}, `-sampler "ddim": want euler, consistency or tts`},
		{[]string{"-model", model, "-sampler", "consistency", "-schedule", "lcm"}, `-schedule "lcm": want osv or animatelcm`},
		{[]string{"-model", model, "-schedule", "animatelcm"}, "-schedule animatelcm: only -sampler consistency takes a schedule"},
		{[]string{"-model", model, "-clients", "0"}, "-clients 0"},
		{[]string{"-model", model, "extra"}, `unexpected argument "extra"`},
		{[]string{"-model", model, "-nope"}, "flag provided but not defined: -nope"},
	} {
		_, err := parseFlags(c.args, io.Discard)
		require.Error(t, err, c.args)
		require.Contains(t, err.Error(), c.want, c.args)
	}
	var usage bytes.Buffer
	_, err := parseFlags([]string{"-help"}, &usage)
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Contains(t, usage.String(), "usage: serve -model DIR [flags]")
	require.Contains(t, usage.String(), "-max-upload-mb")
}

func TestRunRefusesWhatCannotServe(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", t.TempDir()}, "model_index.json"},
		{fixtureArgs("-width", "100"), "-width 100 -height 64: want multiples of 64"},
		{fixtureArgs("-width", "1024", "-height", "1024"), "-width 1024 -height 1024: 1048576 pixels, more than -max-pixels 589824"},
		{fixtureArgs("-frames", "5", "-max-frames", "4"), "-frames 5: more than -max-frames 4"},
		{fixtureArgs("-steps", "60"), "-steps 60: more than -max-steps 50"},
		{fixtureArgs("-sampler", "consistency", "-steps", "41", "-schedule", "animatelcm"), "41 steps: want 1 to 40"},
		{fixtureArgs("-addr", "256.0.0.1:1"), "256.0.0.1"},
		{fixtureArgs("-lora", filepath.Join(t.TempDir(), "missing")), "missing"},
	} {
		err := run(ctx, c.args, io.Discard, io.Discard)
		require.Error(t, err, c.args)
		require.Contains(t, err.Error(), c.want, c.args)
	}
}

func TestLoadTestMode(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), fixtureArgs("-sampler", "tts", "-queue", "1", "-workers", "1", "-loadtest", "6", "-clients", "3", "-rounds", "1"), &out, io.Discard)
	require.NoError(t, err, out.String())
	report := out.String()
	require.Contains(t, report, "6 requests a round from 3 clients, 1 rounds")
	require.Contains(t, report, "| 1 | 6 |")
	require.Contains(t, report, "In all: 6 requests")
	require.Contains(t, report, "Live native tensors:")
}

// process is the test binary run as the command.
type process struct {
	cmd     *exec.Cmd
	url     string
	mu      sync.Mutex
	log     strings.Builder
	drained chan struct{} // closed when its stderr ends
}

func (p *process) logged() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// wait waits for the process to exit, having read all it logged.
func (p *process) wait() error {
	<-p.drained
	return p.cmd.Wait()
}

// command starts the test binary as the command with args and returns it
// once it listens.
func command(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), drained: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "OSV_SERVE_RUN_AS_COMMAND=1")
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.wait()
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(p.drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if _, rest, ok := strings.Cut(line, "listening on http://"); ok {
				addr <- strings.TrimSuffix(strings.Fields(rest)[0], "/")
			}
		}
	}()
	select {
	case a := <-addr:
		p.url = "http://" + a
		return p
	case <-p.drained:
		t.Fatalf("the command exited without listening:\n%s", p.logged())
	case <-time.After(30 * time.Second):
		t.Fatalf("the command did not listen in time:\n%s", p.logged())
	}
	return nil
}

// busy reports whether a worker of the service at url is running a job.
func busy(t *testing.T, url string) bool {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), "\nosv_workers_busy 1\n")
}

func TestSIGTERMFinishesInFlightWorkAndExitsZero(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		steps string
		want  int
	}{
		{"within the deadline", nil, "6", http.StatusOK},
		{"past the deadline", []string{"-shutdown-timeout", "300ms"}, "50", http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := command(t, fixtureArgs(append([]string{"-addr", "127.0.0.1:0", "-workers", "1"}, c.args...)...)...)
			url := p.url
			codes := make(chan int, 1)
			go func() {
				resp, b, err := postForm(context.Background(), t, url, fixtureImage(t), "steps", c.steps, "format", "gif")
				if err != nil {
					t.Error(err)
					codes <- 0
					return
				}
				if resp.StatusCode != c.want {
					t.Errorf("in flight: %d %s", resp.StatusCode, b)
				}
				codes <- resp.StatusCode
			}()
			eventually(t, "the generation running", func() bool { return busy(t, url) })
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			require.Equal(t, c.want, <-codes)
			err := p.wait()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Fatalf("exit status %d; log:\n%s", exit.ExitCode(), p.logged())
			}
			require.NoError(t, err)
			require.Zero(t, p.cmd.ProcessState.ExitCode())
			require.Contains(t, p.logged(), "shutting down: finishing in-flight work")
			require.Contains(t, p.logged(), "stopped")
		})
	}
}
