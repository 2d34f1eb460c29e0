package osv

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// worldBatch is a fixed batch of two clips; a rank of a world of two
// takes clip rank.
func worldBatch(t *testing.T, s *torch.Scope, rank, world int) Batch {
	g, _ := torch.NewGenerator(11)
	defer g.Close()
	draw := func(shape ...int64) *torch.Tensor {
		x, err := g.Randn(s, shape, torch.Float32, testDevice)
		require.NoError(t, err)
		return x
	}
	ids, err := torch.FromFloat32(s, []float32{6, 127, 0.02, 6, 127, 0.02}, []int64{2, 3}, torch.Float32, testDevice)
	require.NoError(t, err)
	b := Batch{Latents: draw(2, 2, 4, 8, 8), ImageLatents: draw(2, 4, 8, 8), ImageEmbeds: draw(2, 1, 16), AddedTimeIDs: ids}
	if world == 1 {
		return b
	}
	part := func(x *torch.Tensor) *torch.Tensor { return s.Slice(x, 0, int64(rank), int64(rank)+1) }
	return Batch{Latents: part(b.Latents), ImageLatents: part(b.ImageLatents), ImageEmbeds: part(b.ImageEmbeds), AddedTimeIDs: part(b.AddedTimeIDs)}
}

const (
	distChild     = "OSV_TRAINER_DIST_CHILD" // where a child rank writes
	distFrom      = "OSV_TRAINER_DIST_FROM"  // the one-process run's checkpoints it starts each step from
	distStepCount = 3
)

// distSteps trains a tiny stage-2 trainer for distStepCount steps, as one
// rank of the world in the environment or alone, and saves its checkpoint
// at path.<k> after step k (path.0: the start) and its metrics at
// path.json. Alone, it trains on; a rank starts each step k from the
// one-process run's checkpoint from.<k−1>, so that every step of the world
// is compared with the same step of one process from the same state (the
// comparison is then not blurred by the rounding of earlier steps, which
// the training amplifies: from 1e-7 after one step to 1e-2 after three).
func distSteps(t *testing.T, path, from string) {
	u := tinyUNet(t)
	defer u.Close()
	bb, d := tinyDisc(t)
	defer bb.Close()
	defer d.Close()
	// Adam's ε is raised from 1e-8 so that gradients at rounding level
	// (say the LoRA B of the time-embedding projections, whose gradient
	// vanishes) are not turned into full-size steps of random sign, which
	// would hide what the comparison is about.
	tr, err := NewTrainer(u, d, TrainConfig{Stage: 2, LoRARank: 4, LR: 5e-3, DiscLR: 1e-3, GridSize: 8, SigmaMax: 20, SolverSteps: 2, EMADecay: 0.9, AdamEps: 1e-3, Seed: 4})
	require.NoError(t, err)
	defer tr.Close()
	rank, world := 0, 1
	if c, ok, err := torch.DistConfigFromEnv(20 * time.Second); ok {
		require.NoError(t, err)
		c.BucketBytes = 16 << 10 // several buckets rather than one
		tr.Group, err = torch.NewProcessGroup(c)
		require.NoError(t, err)
		defer tr.Group.Close()
		require.NoError(t, tr.Broadcast())
		rank, world = c.Rank, c.World
	}
	s := torch.NewScope()
	defer s.Close()
	b := worldBatch(t, s, rank, world)
	require.NoError(t, tr.Save(path+".0"))
	var ms []Metrics
	for k := 1; k <= distStepCount; k++ {
		if from != "" {
			require.NoError(t, tr.Restore(from+"."+strconv.Itoa(k-1)))
			require.Equal(t, int64(k-1), tr.Steps())
		}
		m, err := tr.Step(b)
		require.NoError(t, err)
		ms = append(ms, m)
		require.NoError(t, tr.Save(path+"."+strconv.Itoa(k)))
	}
	js, err := json.Marshal(ms)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".json", js, 0o644))
}

// TestDistTrainerRank runs only as a child rank of TestDataParallelMatchesOneProcess.
func TestDistTrainerRank(t *testing.T) {
	path := os.Getenv(distChild)
	if path == "" {
		t.Skip("runs as a child rank")
	}
	distSteps(t, path, os.Getenv(distFrom))
}

// Two ranks of one clip each, averaging gradients through Gloo, train as
// one process with both clips. Every step, from the same state: each rank
// reports the combined batch's losses and gradient norms, and what the
// step changed (LoRA, EMA, discriminator, both optimisers' moments) is
// what one process changes, to 1e-5 of the change (measured up to 4e-7);
// the two ranks start from identical state and hold identical state
// throughout.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	if !torch.DistributedBuilt(torch.Gloo) || testDevice.CUDA {
		t.Skip("needs c10d/Gloo; compared on the CPU")
	}
	dir := t.TempDir()
	one := filepath.Join(dir, "one")
	distSteps(t, one, "")

	port := freePort(t)
	ranks := []string{filepath.Join(dir, "rank0"), filepath.Join(dir, "rank1")}
	var cmds []*exec.Cmd
	for r, path := range ranks {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDistTrainerRank$")
		cmd.Env = append(os.Environ(), distChild+"="+path, distFrom+"="+one,
			"RANK="+strconv.Itoa(r), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	for r, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "rank %d", r)
	}
	metrics := func(path string) []Metrics {
		b, err := os.ReadFile(path + ".json")
		require.NoError(t, err)
		var ms []Metrics
		require.NoError(t, json.Unmarshal(b, &ms))
		require.Len(t, ms, distStepCount, path)
		return ms
	}
	s := torch.NewScope()
	defer s.Close()
	load := func(path string, k int) map[string][]float32 {
		ts, err := torch.LoadFile(s, path+"."+strconv.Itoa(k), torch.CPU)
		require.NoError(t, err)
		out := map[string][]float32{}
		for key, v := range ts {
			out[key], err = v.Float32s()
			require.NoError(t, err)
		}
		return out
	}

	// Each rank reports the world's mean losses and the norms of the
	// averaged gradients: those of the combined batch (to float32 rounding:
	// measured up to 2e-7).
	oneM := metrics(one)
	for r, path := range ranks {
		for k, m := range metrics(path) {
			w := oneM[k]
			require.Equal(t, w.Step, m.Step, "rank %d step %d", r, k+1)
			require.Equal(t, w.Sigma, m.Sigma, "rank %d step %d: σ", r, k+1)
			require.False(t, m.Skipped, "rank %d step %d", r, k+1)
			for _, c := range []struct {
				what      string
				want, got float64
			}{
				{"loss_g", w.LossG, m.LossG}, {"loss_dist", w.LossDist, m.LossDist},
				{"loss_adv_g", w.LossAdvG, m.LossAdvG}, {"loss_d", w.LossD, m.LossD},
				{"grad_norm_g", w.GradNormG, m.GradNormG}, {"grad_norm_d", w.GradNormD, m.GradNormD},
			} {
				require.InDelta(t, c.want, c.got, 1e-6*math.Abs(c.want), "rank %d step %d: %s", r, k+1, c.what)
			}
		}
	}

	// The ranks start as one process starts.
	start := load(one, 0)
	for r, path := range ranks {
		got := load(path, 0)
		require.Equal(t, len(start), len(got))
		for key, v := range start {
			require.Equal(t, v, got[key], "rank %d's start differs in %s", r, key)
		}
	}
	// What each step changed, per group of tensors: ‖Δ_rank − Δ_one‖/‖Δ_one‖
	// with Δ = W_k − W_{k−1} over all the group's values (single tensors
	// near zero, such as LoRA B of the time embedding projections, carry
	// only rounding and say nothing alone).
	for k := 1; k <= distStepCount; k++ {
		prev, want := load(one, k-1), load(one, k)
		for r, path := range ranks {
			got := load(path, k)
			require.Equal(t, len(want), len(got))
			num, den := map[string]float64{}, map[string]float64{}
			for key, w := range want {
				if key == "rng" {
					require.Equal(t, w, got[key], "rank %d step %d: the noise generator", r, k)
					continue
				}
				group := strings.SplitN(key, ".", 2)[0]
				g, w0 := got[key], prev[key]
				require.Len(t, g, len(w), key)
				for i := range w {
					dw, dg := float64(w[i])-float64(w0[i]), float64(g[i])-float64(w0[i])
					num[group] += (dg - dw) * (dg - dw)
					den[group] += dw * dw
				}
			}
			for _, g := range []string{"lora", "ema", "disc", "opt_g", "opt_d"} {
				require.Positive(t, den[g], "step %d moved %s", k, g)
				rel := math.Sqrt(num[g] / den[g])
				t.Logf("rank %d step %d %s: change %.3g, relative difference from one process %.3g", r, k, g, math.Sqrt(den[g]), rel)
				require.Less(t, rel, 1e-5, "rank %d step %d: the change of %s", r, k, g)
			}
		}
		// The ranks stay in step with each other exactly.
		a, b := load(ranks[0], k), load(ranks[1], k)
		for key, x := range a {
			require.Equal(t, x, b[key], "step %d: rank 0 and rank 1 differ in %s", k, key)
		}
	}
}

func freePort(t *testing.T) int {
	port, err := torch.FreePort()
	require.NoError(t, err)
	return port
}

// On one GPU, a world of one through NCCL: the trainer broadcasts its
// state and steps with the group set.
func TestTrainerNCCLWorldOne(t *testing.T) {
	if !torch.DistributedBuilt(torch.NCCL) || !testDevice.CUDA {
		t.Skip("needs c10d/NCCL and a GPU")
	}
	u := tinyUNet(t)
	defer u.Close()
	bb, d := tinyDisc(t)
	defer bb.Close()
	defer d.Close()
	tr, err := NewTrainer(u, d, TrainConfig{Stage: 2, LoRARank: 4, GridSize: 8, SigmaMax: 20, SolverSteps: 2, Seed: 4})
	require.NoError(t, err)
	defer tr.Close()
	tr.Group, err = torch.NewProcessGroup(torch.DistConfig{Backend: torch.NCCL, Addr: "127.0.0.1", Port: freePort(t),
		World: 1, LocalRank: testDevice.Index, Timeout: 30 * time.Second})
	require.NoError(t, err)
	defer tr.Group.Close()
	require.NoError(t, tr.Broadcast())
	s := torch.NewScope()
	defer s.Close()
	b := worldBatch(t, s, 0, 1)
	for range 2 {
		m, err := tr.Step(b)
		require.NoError(t, err)
		require.False(t, math.IsNaN(m.LossG), "generator loss")
	}
}
