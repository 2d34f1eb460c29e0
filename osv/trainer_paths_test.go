package osv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/osv/loss/consistency"
	"github.com/onestepvideo/osv-go/osv/loss/huber"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// newTinyTrainer is a trainer on tinyUNet and the fixture's DINOv2, closed
// (with its models) by the test's cleanup.
func newTinyTrainer(t *testing.T, cfg TrainConfig) *Trainer {
	t.Helper()
	u := tinyUNet(t)
	bb, d := tinyDisc(t)
	tr, err := NewTrainer(u, d, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close(); d.Close(); bb.Close(); u.Close() })
	return tr
}

var tinyConfig = TrainConfig{Stage: 2, LoRARank: 4, LR: 5e-3, DiscLR: 1e-3, GridSize: 8, SigmaMax: 20, SolverSteps: 2, Seed: 4}

// stateValues is the trainer's whole state (LoRA, EMA, discriminator,
// optimisers) as Go values.
func stateValues(t *testing.T, tr *Trainer) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for k, v := range tr.state() {
		x, err := v.Float32s()
		require.NoError(t, err)
		out[k] = x
	}
	return out
}

// changed lists the keys whose values differ between two states.
func changed(a, b map[string][]float32) []string {
	var out []string
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// A batch with a tensor missing or latents not [B, F, C, h, w] is refused
// before anything runs, and leaves the trainer as it was.
func TestTrainerRejectsBadBatches(t *testing.T) {
	tr := newTinyTrainer(t, tinyConfig)
	s := torch.NewScope()
	defer s.Close()
	b := tinyBatch(t, s)
	before := stateValues(t, tr)
	flat := b
	flat.Latents = s.Reshape(b.Latents, b.Latents.Size(0), -1, b.Latents.Size(3), b.Latents.Size(4))
	for _, c := range []struct {
		name string
		edit func(*Batch)
		want string
	}{
		{"no latents", func(b *Batch) { b.Latents = nil }, "batch: latents is missing"},
		{"no image latents", func(b *Batch) { b.ImageLatents = nil }, "batch: image_latents is missing"},
		{"no image embeds", func(b *Batch) { b.ImageEmbeds = nil }, "batch: image_embeds is missing"},
		{"no time ids", func(b *Batch) { b.AddedTimeIDs = nil }, "batch: added_time_ids is missing"},
		{"latents of four dimensions", func(b *Batch) { b.Latents = flat.Latents }, "batch: latents shape [1 8 8 8], want [batch, frames, channels, height, width]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := b
			c.edit(&bad)
			_, err := tr.Step(bad)
			require.ErrorContains(t, err, c.want)
		})
	}
	require.Equal(t, int64(0), tr.Steps(), "refused batches take no step")
	require.Empty(t, changed(before, stateValues(t, tr)))
	if !testDevice.CUDA {
		t.Log("a batch on another device than the UNet's is checked on the GPU run (go test -tags cuda)")
		return
	}
	cpu := b
	moved, err := b.ImageEmbeds.To(s, torch.Float32, torch.CPU)
	require.NoError(t, err)
	cpu.ImageEmbeds = moved
	_, err = tr.Step(cpu)
	require.ErrorContains(t, err, "batch: image_embeds on cpu, the UNet is on cuda:0")
}

// After Close, the trainer's calls return its closed error, and Close
// again is harmless.
func TestTrainerAfterClose(t *testing.T) {
	tr := newTinyTrainer(t, tinyConfig)
	s := torch.NewScope()
	defer s.Close()
	b := tinyBatch(t, s)
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	require.NoError(t, tr.Save(path))
	require.NoError(t, tr.Close())
	require.NoError(t, tr.Close())
	_, err := tr.Step(b)
	require.ErrorContains(t, err, "osv: trainer is closed")
	require.ErrorContains(t, tr.Save(path), "osv: trainer is closed")
	require.ErrorContains(t, tr.Restore(path), "osv: trainer is closed")
	require.ErrorContains(t, tr.Export(t.TempDir()), "closed")
}

// A step whose gradients are not finite updates nothing (student,
// optimisers, EMA, discriminator) and is reported as skipped; a finite step
// resets the count; MaxNonFinite non-finite steps in a row stop training
// with an error naming the step.
func TestTrainerSkipsNonFiniteSteps(t *testing.T) {
	cfg := tinyConfig
	cfg.MaxNonFinite = 3
	tr := newTinyTrainer(t, cfg)
	s := torch.NewScope()
	defer s.Close()
	good := tinyBatch(t, s)
	bad := good
	bad.Latents = s.MulScalar(good.Latents, math.NaN())

	skip := func(step int64) {
		t.Helper()
		before := stateValues(t, tr)
		m, err := tr.Step(bad)
		require.NoError(t, err, "step %d", step)
		require.True(t, m.Skipped, "step %d is skipped", step)
		require.Equal(t, step, m.Step)
		require.False(t, torch.Finite(m.GradNormG), "step %d: the student's gradient norm", step)
		after := stateValues(t, tr)
		// Every training forward advances the spectral norms' power
		// iteration (their u vectors, from the weights alone); nothing else
		// moves, and nothing turns non-finite.
		for _, k := range changed(before, after) {
			require.True(t, strings.HasSuffix(k, ".weight_u"), "step %d changed %s", step, k)
			for _, v := range after[k] {
				require.True(t, torch.Finite(float64(v)), "step %d: %s is not finite", step, k)
			}
		}
	}
	skip(1)
	skip(2)
	before := stateValues(t, tr)
	m, err := tr.Step(good)
	require.NoError(t, err)
	require.False(t, m.Skipped, "a finite step")
	after := stateValues(t, tr)
	moved := map[string]bool{}
	for _, k := range changed(before, after) {
		moved[strings.SplitN(k, ".", 2)[0]] = true
	}
	require.Equal(t, map[string]bool{"lora": true, "ema": true, "disc": true, "opt_g": true, "opt_d": true}, moved,
		"a finite step after skipped ones updates everything")
	for k, v := range after {
		for _, x := range v {
			require.True(t, torch.Finite(float64(x)), "%s is not finite", k)
		}
	}
	skip(4)
	skip(5)
	_, err = tr.Step(bad)
	require.ErrorContains(t, err, "osv: 3 training steps in a row with non-finite gradients (step 6); stopping")

	// The count survives a checkpoint.
	tr2 := newTinyTrainer(t, cfg)
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	for range 2 {
		m, err := tr2.Step(bad)
		require.NoError(t, err)
		require.True(t, m.Skipped)
	}
	require.NoError(t, tr2.Save(path))
	tr3 := newTinyTrainer(t, cfg)
	require.NoError(t, tr3.Restore(path))
	_, err = tr3.Step(bad)
	require.ErrorContains(t, err, "osv: 3 training steps in a row with non-finite gradients (step 3); stopping")
}

// With Config.LCMBoundary the trainer's consistency function is LCM's
// f = c_s·x + c_o·D in both stages: the first step's distance is the one
// computed here with that boundary from the trainer's own draws (the grid
// index from the step number, the noise from a generator of the seed),
// and differs from the one without it.
func TestTrainerLCMBoundary(t *testing.T) {
	for _, stage := range []int{1, 2} {
		t.Run(fmt.Sprintf("stage %d", stage), func(t *testing.T) {
			cfg := tinyConfig
			cfg.Stage, cfg.LCMBoundary = stage, true
			tr := newTinyTrainer(t, cfg)
			s := torch.NewScope()
			defer s.Close()
			b := tinyBatch(t, s)
			g, err := torch.NewGenerator(cfg.Seed)
			require.NoError(t, err)
			noise, err := g.Randn(s, b.Latents.Shape(), torch.Float32, testDevice)
			g.Close()
			require.NoError(t, err)
			grid, k := tr.grid, tr.Config.SolverSteps
			dist := func(lcm bool) (v float64) {
				o := solver.ConsistencyOptions{LCMBoundary: lcm}
				var err error
				func() {
					defer torch.Recover(&err)
					c := s.Child()
					defer c.Close()
					cond := b.Cond()
					if stage == 1 {
						sg := grid[rand.New(rand.NewPCG(cfg.Seed, 1)).IntN(len(grid))]
						xn := c.Add(b.Latents, c.MulScalar(noise, sg))
						f := solver.Consistency(c, tr.Student.Denoiser(cond), xn, c.Filled(xn, sg, 1), o)
						v, err = huber.Apply(c, f, b.Latents, tr.Config.HuberC, loss.Mean).Item()
						return
					}
					n := rand.New(rand.NewPCG(cfg.Seed, 1)).IntN(len(grid) - k)
					out := consistency.Apply(c, consistency.Inputs{
						Student: tr.Student.Denoiser(cond), Target: tr.EMA.Denoiser(cond), Teacher: tr.Teacher.Denoiser(cond),
						Data: b.Latents, Noise: noise, Sigmas: grid[n : n+k+1],
						Guidance:    solver.FrameGuidance(tr.Config.MinGuidance, tr.Config.MaxGuidance, int(b.Latents.Size(1))),
						Consistency: o, HuberC: tr.Config.HuberC,
					})
					v, err = out.Loss.Item()
				}()
				require.NoError(t, err)
				return v
			}
			withLCM, without := dist(true), dist(false)
			m, err := tr.Step(b)
			require.NoError(t, err)
			t.Logf("stage %d: loss_dist %.6g; with LCM's boundary computed here %.6g, without %.6g", stage, m.LossDist, withLCM, without)
			require.InDelta(t, withLCM, m.LossDist, 1e-5*withLCM)
			require.Greater(t, math.Abs(withLCM-without), 1e-3*without, "the boundary changes the distance")
		})
	}
}

// Restore refuses a checkpoint of another stage (but stage 1 into stage
// 2), another LoRA rank, one missing a tensor, and one with a tensor of
// another shape, each with the reason.
func TestRestoreRefusesMismatches(t *testing.T) {
	dir := t.TempDir()
	save := func(cfg TrainConfig, name string) string {
		tr := newTinyTrainer(t, cfg)
		path := filepath.Join(dir, name)
		require.NoError(t, tr.Save(path))
		return path
	}
	stage2 := save(tinyConfig, "stage2.safetensors")
	stage1Cfg := tinyConfig
	stage1Cfg.Stage = 1
	stage1 := save(stage1Cfg, "stage1.safetensors")
	rank8Cfg := tinyConfig
	rank8Cfg.LoRARank = 8
	rank8 := save(rank8Cfg, "rank8.safetensors")

	// stage2 edited: one tensor dropped, or one reshaped.
	f, err := safetensors.Open(stage2)
	require.NoError(t, err)
	meta := f.Header.Metadata
	require.NoError(t, f.Close())
	s := torch.NewScope()
	defer s.Close()
	edit := func(name string, change func(ts map[string]*torch.Tensor) string) (path, key string) {
		ts, err := torch.LoadFile(s, stage2, torch.CPU)
		require.NoError(t, err)
		key = change(ts)
		path = filepath.Join(dir, name)
		require.NoError(t, torch.SaveFile(path, ts, meta))
		return path, key
	}
	tr := newTinyTrainer(t, tinyConfig)
	disc := "disc." + tr.Disc.State()[0].Name
	emaKey := "ema." + tr.Student.Names()[0]
	missing, _ := edit("missing.safetensors", func(ts map[string]*torch.Tensor) string { delete(ts, emaKey); return emaKey })
	var shape []int64
	reshaped, _ := edit("reshaped.safetensors", func(ts map[string]*torch.Tensor) string {
		shape = ts[disc].Shape()
		ts[disc] = s.Reshape(ts[disc], -1)
		return disc
	})
	numel := int64(1)
	for _, d := range shape {
		numel *= d
	}

	one := newTinyTrainer(t, stage1Cfg)
	require.ErrorContains(t, one.Restore(stage2), "is from stage 2; this trainer runs stage 1")
	require.ErrorContains(t, tr.Restore(rank8), "has LoRA rank 8; this trainer has 4")
	require.ErrorContains(t, tr.Restore(missing), `no tensor "`+emaKey+`"`)
	require.ErrorContains(t, tr.Restore(reshaped), fmt.Sprintf("%q has shape [%d], want %v", disc, numel, shape))
	// A stage-1 checkpoint starts stage 2: θ⁻ begins at the restored θ.
	require.NoError(t, tr.Restore(stage1))
	st := stateValues(t, tr)
	for _, name := range tr.Student.Names() {
		require.Equal(t, st["lora."+name], st["ema."+name], "θ⁻ = θ for %s", name)
	}
	require.Equal(t, int64(0), tr.Steps(), "a new stage counts from 0")
}
