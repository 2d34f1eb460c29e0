package vae

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// withAttentionBias decodes z twice, the second time with the decoder's
// middle attention output bias replaced by a constant, and returns the
// relative change.
func withAttentionBias(t *testing.T, m *Model, s *torch.Scope, z *torch.Tensor, frames int) float64 {
	t.Helper()
	p, ok := m.Params().Get("decoder.mid_block.attentions.0.to_out.0.bias")
	require.True(t, ok)
	var before, after *torch.Tensor
	run(t, func() { before = m.DecodeApply(s, z, frames, frames) })
	old := p.T
	bias, err := torch.Full(nil, p.Shape, 3, m.DType(), m.Device())
	require.NoError(t, err)
	p.T = bias
	defer func() { p.T = old; bias.Free() }()
	run(t, func() { after = m.DecodeApply(s, z, frames, frames) })
	return relErr(t, after, before)
}

// As in diffusers, the decoder's middle attention runs between the first
// two residual blocks, so with one layer per block it never runs.
func TestDecoderMidAttentionRunsWithTwoLayers(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	tc := loadCase(t, s)
	m := loadModel(t)
	if m.Config.LayersPerBlock == 1 {
		change := withAttentionBias(t, m, s, tc.in["decode_in"], tc.numFrames)
		t.Logf("one layer per block: changing the attention changes the output by %.3g", change)
		require.Zero(t, change)
	}

	cfg := Config{
		InChannels: 3, OutChannels: 3, DownBlockTypes: []string{DownEncoder, DownEncoder},
		BlockOutChannels: []int64{32, 32}, LayersPerBlock: 2, LatentChannels: 4, ScalingFactor: 0.18215,
	}
	two, err := New(cfg, WithDevice(testDevice.String()), WithSeed(3))
	require.NoError(t, err)
	defer two.Close()
	g, err := torch.NewGenerator(4)
	require.NoError(t, err)
	defer g.Close()
	z, err := g.Randn(s, []int64{4, 4, 3, 5}, torch.Float32, testDevice)
	require.NoError(t, err)
	change := withAttentionBias(t, two, s, z, 2)
	t.Logf("two layers per block: changing the attention changes the output by %.3g", change)
	require.Greater(t, change, 1e-3)
}
