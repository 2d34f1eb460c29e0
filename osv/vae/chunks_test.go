package vae

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// Chunks of whole clips give the fixture's decode_out whatever their size;
// shorter chunks give what decoding each run of frames as its own clip
// gives, which is not decode_out (the decoder mixes frames).
func TestDecodeChunks(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	m := loadModel(t)
	s := torch.NewScope()
	defer s.Close()
	tc := loadCase(t, s)
	z, want := tc.in["decode_in"], tc.in["decode_out"]
	n, f := int(z.Size(0)), tc.numFrames

	for _, k := range slices.Compact([]int{f, n, n + 3}) {
		var got *torch.Tensor
		run(t, func() { got = m.DecodeApply(s, z, f, k) })
		rel := relErr(t, got, want)
		t.Logf("chunk %d (clips of %d frames): relative L2 error %.3g", k, f, rel)
		require.LessOrEqual(t, rel, 1e-5)
	}

	// Two copies of the clips in one call: each copy decodes as alone.
	var twice, got *torch.Tensor
	run(t, func() {
		twice = s.Cat(0, z, z)
		got = m.DecodeApply(s, twice, f, 2*n)
	})
	for i := range 2 {
		var half *torch.Tensor
		run(t, func() { half = s.Slice(got, 0, int64(i*n), int64((i+1)*n)) })
		require.LessOrEqual(t, relErr(t, half, want), 1e-5, "copy %d", i)
	}

	// Runs shorter than a clip, each decoded as a clip of its own length.
	for k := 1; k < f; k++ {
		var got, ref *torch.Tensor
		run(t, func() {
			got = m.DecodeApply(s, twice, f, k)
			var parts []*torch.Tensor
			for clip := 0; clip < 2*n; clip += f {
				for j := 0; j < f; j += k {
					e := min(j+k, f)
					piece := s.Slice(twice, 0, int64(clip+j), int64(clip+e))
					parts = append(parts, m.DecodeApply(s, piece, e-j, e-j))
				}
			}
			ref = s.Cat(0, parts...)
		})
		rel := relErr(t, got, ref)
		require.LessOrEqual(t, rel, 1e-5, "chunk %d", k)
		var first *torch.Tensor
		run(t, func() { first = s.Slice(got, 0, 0, int64(n)) })
		apart := relErr(t, first, want)
		t.Logf("chunk %d of %d frames: %.3g from the pieces decoded alone, %.3g from decode_out", k, f, rel, apart)
		require.Greater(t, apart, 1e-3, "chunk %d should differ from whole-clip decoding", k)
	}
}
