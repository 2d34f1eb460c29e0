package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// TestMain lets the test binary stand in for the command in a child
// process: DEMO_ARGS holds its arguments, separated by 0x1f.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("DEMO_ARGS"); ok {
		os.Args = append([]string{"demo"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// demo runs the command with args and returns its output and error.
func demo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DEMO_ARGS="+strings.Join(args, "\x1f"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The demo loads the fixture's UNet, times it on the reference inputs and
// reports its agreement with diffusers' output, within the single-model
// tolerance; the shapes it prints are the fixture's.
func TestDemoMatchesTheReference(t *testing.T) {
	out, err := demo(t, "-fixtures", fixture.Root(), "-runs", "2")
	require.NoError(t, err, out)
	t.Log(out)
	s := torch.NewScope()
	defer s.Close()
	ref, err := torch.LoadFile(s, fixture.Path("io", "unet.safetensors"), torch.CPU)
	require.NoError(t, err)
	require.Contains(t, out, "loaded "+filepath.Join(fixture.Root(), "pipeline", "unet"))
	require.Contains(t, out, fmt.Sprintf("forward %v → %v: median", ref["sample"].Shape(), ref["out"].Shape()))
	require.Contains(t, out, "over 2 runs")
	m := regexp.MustCompile(`relative L2 error against diffusers' output: (\S+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	rel, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.LessOrEqual(t, rel, 1e-4)
}

// A folder without the fixture's files fails with one line naming it.
func TestDemoRejectsAMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	out, err := demo(t, "-fixtures", dir)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, out)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, out, "demo: unet: stat "+filepath.Join(dir, "pipeline", "unet")+": no such file or directory")
	out, err = demo(t, "-fixtures", fixture.Root(), "-device", "tpu")
	require.Error(t, err, out)
	require.Contains(t, out, "demo:")
	require.Contains(t, out, "tpu")
}
