package vae

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// Chunks of whole clips give the fixture's decode_out whatever their size.
// Chunks shorter than a clip give what diffusers' decode_latents gives
// (the pipeline fixture decodes its frames decode_chunk_size at a time),
// which is not whole-clip decoding: the decoder mixes frames. Every other
// chunk size shorter than a clip gives what decoding each run of frames as
// a clip of its own gives (whole-clip decoding, which both fixtures check).
func TestDecodeChunks(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	s := torch.NewScope()
	defer s.Close()
	tc := loadCase(t, s, "vae")
	m := loadModel(t, tc)
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

	t.Run("pipeline's chunks", func(t *testing.T) { decodeLikeThePipeline(t, m) })

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

// decodeLikeThePipeline decodes the pipeline fixture's last latents with
// its decode_chunk_size and compares the frames with diffusers' own.
func decodeLikeThePipeline(t *testing.T, m *Model) {
	var c struct {
		Steps     int `json:"num_inference_steps"`
		Frames    int `json:"num_frames"`
		ChunkSize int `json:"decode_chunk_size"`
	}
	require.NoError(t, fixture.JSON("pipeline", &c))
	require.Positive(t, c.Steps, "io/pipeline.json: num_inference_steps")
	require.Positive(t, c.Frames, "io/pipeline.json: num_frames")
	if c.ChunkSize < 1 || c.ChunkSize >= c.Frames {
		t.Skipf("io/pipeline decodes whole clips (decode_chunk_size %d, %d frames): TestDecodeChunks' whole-clip cases cover it",
			c.ChunkSize, c.Frames)
	}
	pm, err := Load(fixture.Path("pipeline", "vae"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	defer pm.Close()
	s := torch.NewScope()
	defer s.Close()
	ref, err := torch.LoadFile(s, fixture.Path("io", "pipeline.safetensors"), testDevice)
	require.NoError(t, err)
	lat, ok := ref[fmt.Sprintf("latents_after_step.%d", c.Steps-1)]
	require.True(t, ok, "io/pipeline: no latents after the last step")
	frames := ref["frames"] // [B, F, 3, H, W] in [0, 1]
	require.Equal(t, 5, lat.Dim())
	require.Equal(t, int64(c.Frames), lat.Size(1))

	// The frames in [0, 1], as the pipeline maps the decoder's [−1, 1].
	decode := func(chunk int) *torch.Tensor {
		var px *torch.Tensor
		run(t, func() {
			b, fr := lat.Size(0), lat.Size(1)
			z := s.MulScalar(s.Reshape(lat, b*fr, lat.Size(2), lat.Size(3), lat.Size(4)), 1/pm.Config.ScalingFactor)
			px = pm.DecodeApply(s, z, c.Frames, chunk)
			px = s.Reshape(px, b, fr, px.Size(1), px.Size(2), px.Size(3))
			px = s.ClampMax(s.ClampMin(s.AddScalar(s.MulScalar(px, 0.5), 0.5), 0), 1)
		})
		return px
	}
	rel := relErr(t, decode(c.ChunkSize), frames)
	whole := relErr(t, decode(c.Frames), frames)
	t.Logf("%d frames in chunks of %d: relative L2 error %.3g from diffusers' frames (whole clips: %.3g)",
		c.Frames, c.ChunkSize, rel, whole)
	require.LessOrEqual(t, rel, 1e-4)
	require.Greater(t, whole, 1e-3, "whole-clip decoding should differ from the chunked frames")
}
