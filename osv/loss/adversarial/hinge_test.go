package adversarial

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

func logits(t *testing.T, v ...float32) gotorch.Tensor {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromFloat32(s, v, []int64{1, int64(len(v))}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	g, err := torch.ToGotorch(x)
	require.NoError(t, err)
	t.Cleanup(func() { torch.Release(g) })
	return g
}

func item(t *testing.T, g gotorch.Tensor) float64 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, g)
	require.NoError(t, err)
	v, err := x.Item()
	require.NoError(t, err)
	torch.Release(g)
	return v
}

func TestHingeOnHandMadeLogits(t *testing.T) {
	// real: relu(1−2)=0, relu(1−0.5)=0.5, relu(1+1)=2 → mean 2.5/3
	// fake: relu(1−3)=0, relu(1+0)=1, relu(1+0.5)=1.5, relu(1−0.5)=0.5 → mean 3/4
	real := logits(t, 2, 0.5, -1)
	fake := logits(t, -3, 0, 0.5, -0.5)
	d, err := DiscriminatorLoss([]gotorch.Tensor{real}, []gotorch.Tensor{fake})
	require.NoError(t, err)
	require.InDelta(t, 2.5/3+0.75, item(t, d), 1e-6)
	g, err := GeneratorLoss([]gotorch.Tensor{fake})
	require.NoError(t, err)
	require.InDelta(t, 0.75, item(t, g), 1e-6) // −mean(−3, 0, 0.5, −0.5)

	// Two maps are averaged: the second map alone gives 0 + relu(1+5)=6 and −5.
	real2, fake2 := logits(t, 3), logits(t, 5)
	d, err = DiscriminatorLoss([]gotorch.Tensor{real, real2}, []gotorch.Tensor{fake, fake2})
	require.NoError(t, err)
	require.InDelta(t, (2.5/3+0.75+6)/2, item(t, d), 1e-6)
	g, err = GeneratorLoss([]gotorch.Tensor{fake, fake2})
	require.NoError(t, err)
	require.InDelta(t, (0.75-5)/2, item(t, g), 1e-6)

	_, err = DiscriminatorLoss([]gotorch.Tensor{real}, nil)
	require.ErrorContains(t, err, "1 real and 0 fake")
	_, err = GeneratorLoss([]gotorch.Tensor{{}})
	require.ErrorContains(t, err, "fake[0]")
}
