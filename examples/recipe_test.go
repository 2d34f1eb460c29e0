package examples

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// copyTree copies the files git knows in the module at root (tracked, and
// untracked but not ignored, as they are in the work tree) into dst.
func copyTree(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err, "git ls-files")
	n := 0
	for _, rel := range strings.Split(string(out), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		require.NoError(t, err)
		to := filepath.Join(dst, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o755))
		if info.Mode()&fs.ModeSymlink != 0 {
			link, err := os.Readlink(src)
			require.NoError(t, err)
			require.NoError(t, os.Symlink(link, to))
			continue
		}
		if !info.Mode().IsRegular() {
			continue // a submodule's folder
		}
		require.NoError(t, copyFile(src, to, info.Mode().Perm()))
		n++
	}
	require.Positive(t, n, "git lists no files under %s", root)
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// proxyOnly is the environment's GOPROXY without its direct (version
// control) entries: modules come from the proxies or the module cache.
func proxyOnly(t *testing.T, goTool string) string {
	t.Helper()
	out, err := exec.Command(goTool, "env", "GOPROXY").Output()
	require.NoError(t, err, "go env GOPROXY")
	var keep []string
	for _, f := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
		if f != "direct" {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		return "off"
	}
	return strings.Join(keep, ",")
}

// recipeStep is one line of the recipe's training log.
type recipeStep struct {
	step        int
	sigma, loss float64
}

func parseRecipe(t *testing.T, log []byte) (steps []recipeStep, sampled string) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "sampled ") {
			sampled = line
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != "step" || f[2] != "sigma" || f[4] != "loss" {
			continue
		}
		var st recipeStep
		var err error
		st.step, err = strconv.Atoi(f[1])
		require.NoError(t, err, line)
		st.sigma, err = strconv.ParseFloat(f[3], 64)
		require.NoError(t, err, line)
		st.loss, err = strconv.ParseFloat(f[5], 64)
		require.NoError(t, err, line)
		steps = append(steps, st)
	}
	require.NoError(t, sc.Err())
	return steps, sampled
}

// The out-of-module recipe (examples/recipe, its own go.mod) builds from a
// copy of the repository with modules from the proxy alone, trains, and
// its loss falls: its last cycle through the σ grid has a lower mean loss
// than its first.
func TestRecipeOutsideTheModule(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git: the copy is made of the files git knows")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	if err := exec.Command("git", "-C", root, "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		t.Skipf("%s is not a git work tree", root)
	}
	dir := t.TempDir()
	copyTree(t, root, dir)
	recipe := filepath.Join(dir, "examples", "recipe")
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		_, err := os.Stat(filepath.Join(recipe, f))
		require.NoError(t, err, "examples/recipe/%s is not in the copy (untracked and ignored?)", f)
	}

	// A cold build compiles the engine's C++; -trimpath lets later copies
	// share the build cache whatever their folder.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	env := append(os.Environ(), "GOWORK=off", "GOPROXY="+proxyOnly(t, goTool))
	bin := filepath.Join(t.TempDir(), "recipe")
	build := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-o", bin, ".")
	build.Dir, build.Env = recipe, env
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build in the copy's examples/recipe:\n%s", out)

	unetDir := filepath.Join(dir, "testdata", "svd-tiny", "pipeline", "unet")
	if r := os.Getenv("OSV_FIXTURES"); r != "" {
		unetDir = filepath.Join(r, "pipeline", "unet")
	}
	const levels, k, steps = 6, 3, 6
	cycle := levels - k
	t0 := time.Now()
	runCmd := exec.CommandContext(ctx, bin, "-unet", unetDir, "-levels", strconv.Itoa(levels), "-k", strconv.Itoa(k),
		"-steps", strconv.Itoa(steps), "-sample-steps", "2", "-seed", "1")
	runCmd.Dir, runCmd.Env = recipe, env
	out, err = runCmd.CombinedOutput()
	require.NoError(t, err, "the recipe:\n%s", out)
	t.Logf("the recipe ran in %s:\n%s", time.Since(t0).Round(time.Millisecond), out)

	log, sampled := parseRecipe(t, out)
	require.Len(t, log, steps, "one loss line per step")
	var first, last float64
	for i, st := range log {
		require.Equal(t, i+1, st.step)
		require.Positive(t, st.loss, "step %d", st.step)
		if i >= cycle {
			require.Equal(t, log[i-cycle].sigma, st.sigma, "steps %d and %d sit at the same grid index", i-cycle+1, i+1)
		}
		switch {
		case i < cycle:
			first += st.loss / float64(cycle)
		case i >= steps-cycle:
			last += st.loss / float64(cycle)
		}
	}
	t.Logf("mean loss of the first cycle %.4g, of the last %.4g", first, last)
	// Measured (CPU): 24–25% lower with seeds 1 to 3 (and no change at all
	// with a learning rate of 1e-9).
	require.Less(t, last, 0.9*first, "the recipe's loss does not fall")
	require.NotEmpty(t, sampled, "the recipe samples the student")
	require.Contains(t, sampled, "in 2 steps")
}
