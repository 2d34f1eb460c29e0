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
// two residual blocks, so with one layer per block it never runs: in io/vae
// (the pipeline's VAE, one layer) changing it changes nothing, in io/vae_l2
// (two layers, as SVD's own VAE) it changes the output.
func TestDecoderMidAttentionRunsWithTwoLayers(t *testing.T) {
	for _, name := range vaeCases {
		t.Run(name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			tc := loadCase(t, s, name)
			m := loadModel(t, tc)
			if name == "vae_l2" {
				require.GreaterOrEqual(t, m.Config.LayersPerBlock, int64(2), "io/vae_l2's model has two layers per block")
			}
			change := withAttentionBias(t, m, s, tc.in["decode_in"], tc.numFrames)
			t.Logf("%d layers per block: changing the attention changes the output by %.3g", m.Config.LayersPerBlock, change)
			if m.Config.LayersPerBlock == 1 {
				require.Zero(t, change)
			} else {
				require.Greater(t, change, 1e-3)
			}
		})
	}
}
