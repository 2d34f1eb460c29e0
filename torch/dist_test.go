package torch

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// distChild is the environment variable that makes this test binary act
// as one rank of a world started by a test.
const distChild = "OSV_DIST_TEST_CHILD"

// TestDistRank runs only inside a child process: one rank of a Gloo world.
func TestDistRank(t *testing.T) {
	mode := os.Getenv(distChild)
	if mode == "" {
		t.Skip("runs as a child rank of TestDist*")
	}
	c, ok, err := DistConfigFromEnv(3 * time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	p, err := NewProcessGroup(c)
	require.NoError(t, err)
	defer p.Close()
	s := NewScope()
	defer s.Close()
	r := float32(c.Rank)
	switch mode {
	case "collectives":
		// Rank r holds r+1 and r·[1, 2, 3]; the mean over ranks 0..n−1 is
		// (n+1)/2 and (n−1)/2·[1, 2, 3].
		a, err := FromFloat32(s, []float32{r + 1}, []int64{1}, Float32, CPU)
		require.NoError(t, err)
		b, err := FromFloat32(s, []float32{r, 2 * r, 3 * r}, []int64{3}, Float32, CPU)
		require.NoError(t, err)
		require.NoError(t, p.AllReduceMean([]*Tensor{a, b}))
		n := float32(c.World)
		av, _ := a.Float32s()
		bv, _ := b.Float32s()
		require.Equal(t, []float32{(n + 1) / 2}, av)
		m := (n - 1) / 2
		require.Equal(t, []float32{m, 2 * m, 3 * m}, bv)
		// Broadcast from the last rank.
		x, err := FromFloat32(s, []float32{r, -r}, []int64{2}, Float32, CPU)
		require.NoError(t, err)
		require.NoError(t, p.Broadcast([]*Tensor{x}, c.World-1))
		xv, _ := x.Float32s()
		require.Equal(t, []float32{n - 1, 1 - n}, xv)
		require.NoError(t, p.Barrier())
		fmt.Println("rank", c.Rank, "ok")
	case "reducer":
		// Three parameters; rank r's loss is Σ (r+1)·k·p_k, except that rank
		// 1 leaves p_2 out. The mean gradients are known in closed form.
		var ps []*Tensor
		for range 3 {
			q, err := FromFloat32(s, []float32{1, 2, 3, 4}, []int64{4}, Float32, CPU)
			require.NoError(t, err)
			require.NoError(t, q.SetRequiresGrad(true))
			ps = append(ps, q)
		}
		p.Config.BucketBytes = 16 // one parameter a bucket
		red, err := p.NewGradReducer(ps)
		require.NoError(t, err)
		defer red.Close()
		for round := range 2 { // a reducer serves backward after backward
			require.NoError(t, ZeroGrads(ps))
			require.NoError(t, red.Arm())
			var loss *Tensor
			for k, q := range ps {
				if k == 2 && c.Rank == 1 {
					continue
				}
				term := s.MulScalar(s.Sum(q, false), float64((c.Rank+1)*(k+1)))
				if loss == nil {
					loss = term
				} else {
					loss = s.Add(loss, term)
				}
			}
			require.NoError(t, Backward(loss))
			overlapped, err := red.Finish()
			require.NoError(t, err)
			n := float32(c.World)
			for k, q := range ps {
				g, err := q.Grad(s)
				require.NoError(t, err)
				want := float32(k+1) * (n + 1) / 2 // mean of (r+1)·(k+1)
				if k == 2 {
					want = float32(k+1) * ((n+1)*n/2 - 2) / n // rank 1 gave zeros
				}
				require.Equal(t, []float32{want, want, want, want}, vals(t, g), "round %d parameter %d", round, k)
			}
			fmt.Printf("rank %d round %d ok, %d of 3 buckets started during the backward\n", c.Rank, round, overlapped)
		}
	case "dead-peer", "stuck-peer":
		require.NoError(t, p.Barrier())
		if c.Rank == 1 {
			if mode == "stuck-peer" {
				time.Sleep(5 * time.Second) // alive, but never joins
			}
			os.Exit(0) // leaves without a word
		}
		time.Sleep(200 * time.Millisecond)
		a, err := FromFloat32(s, []float32{1}, []int64{1}, Float32, CPU)
		require.NoError(t, err)
		start := time.Now()
		err = p.AllReduceMean([]*Tensor{a})
		require.Error(t, err)
		fmt.Printf("rank 0 error after %.1fs: %v\n", time.Since(start).Seconds(), strings.SplitN(err.Error(), "\n", 2)[0])
	}
}

func freePort(t *testing.T) int {
	port, err := FreePort()
	require.NoError(t, err)
	return port
}

// startWorld runs n child ranks in mode and returns their outputs.
func startWorld(t *testing.T, n int, mode string) ([]string, []error) {
	port := freePort(t)
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	for r := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDistRank$", "-test.v")
		cmd.Env = append(os.Environ(), distChild+"="+mode, "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		outs[r] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[r], outs[r]
		require.NoError(t, cmd.Start())
		cmds[r] = cmd
	}
	errs := make([]error, n)
	texts := make([]string, n)
	for r, cmd := range cmds {
		errs[r] = cmd.Wait()
		texts[r] = outs[r].String()
	}
	return texts, errs
}

// Two and three processes on loopback reduce, broadcast and meet at a
// barrier through c10d's Gloo group.
func TestDistCollectives(t *testing.T) {
	if !DistributedBuilt(Gloo) {
		t.Skip("this build has no c10d/Gloo")
	}
	for _, n := range []int{2, 3} {
		outs, errs := startWorld(t, n, "collectives")
		for r := range n {
			require.NoError(t, errs[r], "rank %d:\n%s", r, outs[r])
			require.Contains(t, outs[r], fmt.Sprintf("rank %d ok", r))
		}
	}
}

// A rank that dies makes the survivor's next collective fail with an
// error within the timeout, not hang.
func TestDistDeadPeer(t *testing.T) {
	if !DistributedBuilt(Gloo) {
		t.Skip("this build has no c10d/Gloo")
	}
	start := time.Now()
	outs, errs := startWorld(t, 2, "dead-peer")
	require.NoError(t, errs[0], "rank 0:\n%s", outs[0])
	require.Contains(t, outs[0], "rank 0 error after")
	t.Log(strings.TrimSpace(outs[0][strings.Index(outs[0], "rank 0 error"):]))
	require.Less(t, time.Since(start), 30*time.Second)
}

// A rank that stays alive but never joins the collective makes it fail
// after the group's timeout (3 s here).
func TestDistStuckPeer(t *testing.T) {
	if !DistributedBuilt(Gloo) {
		t.Skip("this build has no c10d/Gloo")
	}
	outs, errs := startWorld(t, 2, "stuck-peer")
	require.NoError(t, errs[0], "rank 0:\n%s", outs[0])
	i := strings.Index(outs[0], "rank 0 error after ")
	require.GreaterOrEqual(t, i, 0, outs[0])
	var secs float64
	_, err := fmt.Sscanf(outs[0][i:], "rank 0 error after %fs", &secs)
	require.NoError(t, err)
	t.Log(strings.TrimSpace(outs[0][i:]))
	require.InDelta(t, 3, secs, 1.5, "the collective should fail at the timeout")
}

// Gradients averaged while the backward runs: buckets start as their
// gradients arrive, a parameter one rank did not use counts as zeros
// there, and the reducer serves one backward after another. On rank 0,
// which uses every parameter, all three buckets start their all-reduce
// inside the backward; on rank 1 none does, by design: buckets start in
// order, and the first holds the parameter rank 1 leaves out, whose
// gradient only Finish supplies.
func TestDistGradReducer(t *testing.T) {
	if !DistributedBuilt(Gloo) {
		t.Skip("this build has no c10d/Gloo")
	}
	outs, errs := startWorld(t, 2, "reducer")
	for r, want := range []int{3, 0} {
		require.NoError(t, errs[r], "rank %d:\n%s", r, outs[r])
		for round := range 2 {
			head := fmt.Sprintf("rank %d round %d ok, ", r, round)
			i := strings.Index(outs[r], head)
			require.GreaterOrEqual(t, i, 0, outs[r])
			line := strings.SplitN(outs[r][i:], "\n", 2)[0]
			t.Log(line)
			var started, buckets int
			_, err := fmt.Sscanf(line[len(head):], "%d of %d buckets started during the backward", &started, &buckets)
			require.NoError(t, err, line)
			require.Equal(t, 3, buckets, line)
			require.Equal(t, want, started, "rank %d round %d: buckets started inside the backward", r, round)
		}
	}
}

func TestDistConfig(t *testing.T) {
	t.Setenv("WORLD_SIZE", "")
	_, ok, err := DistConfigFromEnv(time.Second)
	require.NoError(t, err)
	require.False(t, ok)
	t.Setenv("WORLD_SIZE", "2")
	t.Setenv("RANK", "x")
	_, _, err = DistConfigFromEnv(time.Second)
	require.ErrorContains(t, err, "RANK")
	_, err = NewProcessGroup(DistConfig{Addr: "127.0.0.1", Port: 1234, Rank: 2, World: 2, Timeout: time.Second})
	require.ErrorContains(t, err, "rank 2 is outside a world of 2")
	_, err = NewProcessGroup(DistConfig{Addr: "127.0.0.1", Port: 0, Rank: 0, World: 1, Timeout: time.Second})
	require.ErrorContains(t, err, "port")
}

// NCCL with a world of one on the first GPU: the collectives run through
// c10d's NCCL group on the device, and tensors elsewhere are refused.
func TestDistNCCLWorldOne(t *testing.T) {
	c := DistConfig{Backend: NCCL, Addr: "127.0.0.1", Port: freePort(t), World: 1, Timeout: 20 * time.Second}
	if !DistributedBuilt(NCCL) {
		_, err := NewProcessGroup(c)
		require.ErrorContains(t, err, "no c10d nccl backend")
		t.Skip("this build has no c10d/NCCL")
	}
	dev := Device{CUDA: true}
	p, err := NewProcessGroup(c)
	require.NoError(t, err)
	defer p.Close()
	s := NewScope()
	defer s.Close()
	a, err := FromFloat32(s, []float32{1.5, -2, 3}, []int64{3}, Float32, dev)
	require.NoError(t, err)
	b, err := FromFloat32(s, []float32{0.25, 8}, []int64{2}, BFloat16, dev)
	require.NoError(t, err)
	require.NoError(t, p.AllReduceMean([]*Tensor{a, b}))
	require.NoError(t, p.Broadcast([]*Tensor{a, b}, 0))
	require.NoError(t, p.Barrier())
	require.Equal(t, []float32{1.5, -2, 3}, vals(t, a))
	require.Equal(t, []float32{0.25, 8}, vals(t, b))
	require.Equal(t, BFloat16, b.DType(), "reduced in float32, written back in the tensor's dtype")
	cpu, err := FromFloat32(s, []float32{1}, []int64{1}, Float32, CPU)
	require.NoError(t, err)
	require.ErrorContains(t, p.AllReduceMean([]*Tensor{cpu}), "in a process group on cuda:0")

	// The gradient reducer on the device: a world of one keeps the gradients.
	w, err := FromFloat32(s, []float32{1, 2}, []int64{2}, Float32, dev)
	require.NoError(t, err)
	require.NoError(t, w.SetRequiresGrad(true))
	red, err := p.NewGradReducer([]*Tensor{w})
	require.NoError(t, err)
	defer red.Close()
	require.NoError(t, red.Arm())
	require.NoError(t, Backward(s.Sum(s.Mul(w, w), false)))
	_, err = red.Finish()
	require.NoError(t, err)
	g, err := w.Grad(s)
	require.NoError(t, err)
	require.Equal(t, []float32{2, 4}, vals(t, g))
	p.Close()
	require.ErrorContains(t, red.Arm(), "closed", "a reducer outliving its group")
	require.ErrorContains(t, p.Barrier(), "closed")
}
