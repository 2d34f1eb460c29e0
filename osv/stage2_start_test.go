package osv

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// TestStage2StartsWithTargetEqualStudent: a stage-1 checkpoint (whose EMA
// lags the student) starting stage 2 gives θ⁻ = θ, with the student and
// the discriminator restored and fresh optimisers.
func TestStage2StartsWithTargetEqualStudent(t *testing.T) {
	u := tinyUNet(t)
	defer u.Close()
	bb, d := tinyDisc(t)
	defer bb.Close()
	defer d.Close()
	s := torch.NewScope()
	defer s.Close()
	b := tinyBatch(t, s)

	one, err := NewTrainer(u, d, TrainConfig{Stage: 1, LoRARank: 4, LR: 5e-2, DiscLR: 1e-3, GridSize: 8, SigmaMax: 20, EMADecay: 0.9, Seed: 4})
	require.NoError(t, err)
	for range 3 {
		m, err := one.Step(b)
		require.NoError(t, err)
		require.False(t, m.Skipped)
	}
	student := floatsOf(t, one.Student.Trainable())
	ema := floatsOf(t, one.EMA.Weights())
	disc := floatsOf(t, tensors(one.Disc.Trainable()))
	require.NotEqual(t, student, ema, "after stage 1 the EMA should lag the student (or the test proves nothing)")
	path := t.TempDir() + "/stage1.safetensors"
	require.NoError(t, one.Save(path))
	require.NoError(t, one.Close())

	two, err := NewTrainer(u, d, TrainConfig{Stage: 2, LoRARank: 4, LR: 5e-2, DiscLR: 1e-3, GridSize: 8, SigmaMax: 20, SolverSteps: 2, Seed: 9})
	require.NoError(t, err)
	defer two.Close()
	require.NoError(t, two.Restore(path))
	require.Equal(t, student, floatsOf(t, two.Student.Trainable()), "θ restored")
	require.Equal(t, student, floatsOf(t, two.EMA.Weights()), "θ⁻ = θ at the start of stage 2")
	require.Equal(t, disc, floatsOf(t, tensors(two.Disc.Trainable())), "discriminator restored")
	require.Zero(t, two.Steps())
	require.Zero(t, two.optG.Steps(), "stage 2's optimiser starts anew")
	// θ⁻ is still its own tensor: a step moves it apart from θ.
	_, err = two.Step(b)
	require.NoError(t, err)
	require.NotEqual(t, floatsOf(t, two.Student.Trainable()), floatsOf(t, two.EMA.Weights()))
}

func floatsOf(t *testing.T, ts []*torch.Tensor) [][]float32 {
	t.Helper()
	out := make([][]float32, len(ts))
	for i, x := range ts {
		v, err := x.Float32s()
		require.NoError(t, err)
		out[i] = v
	}
	return out
}
