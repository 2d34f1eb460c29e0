package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// A teacher widened to twice its block widths computes what it computed,
// through every kind of layer the toy's UNet has (GroupNorm over the
// concatenated skips, attention heads, GEGLU, the timestep's and frames'
// sinusoidal embeddings); the doubled channels' two copies differ in what
// they pass on.
func TestWidenKeepsTheFunction(t *testing.T) {
	wc := smallWorld
	narrow, err := unet.New(teacherUNet(wc, []int64{32, 64}), unet.WithSeed(5))
	require.NoError(t, err)
	defer narrow.Close()
	// Random weights everywhere, also where the initialisation puts zeros
	// or ones, so that no layer passes its input through unseen.
	s := torch.NewScope()
	defer s.Close()
	g, err := torch.NewGenerator(9)
	require.NoError(t, err)
	defer g.Close()
	for _, p := range narrow.Params().List() {
		r, err := g.Randn(s, p.Shape, torch.Float32, torch.CPU)
		require.NoError(t, err)
		require.NoError(t, torch.CopyInto(p.T, s.MulScalar(r, 0.3)))
	}
	wide, err := unet.New(teacherUNet(wc, []int64{64, 128}), unet.WithSeed(6))
	require.NoError(t, err)
	defer wide.Close()
	require.NoError(t, widenInto(wide, narrow))

	const b = 2
	h := int64(wc.Size / factor)
	sample, err := g.Randn(s, []int64{b, int64(wc.Frames), 2 * latentChannel, h, h}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	ctx, err := g.Randn(s, []int64{b, 1, embedDim}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	ts, err := torch.FromFloat32(s, []float32{0.3, -1.2}, []int64{b}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	ids, err := torch.FromFloat32(s, []float32{6, 127, 0.02, 3, 40, 0.5}, []int64{b, 3}, torch.Float32, torch.CPU)
	require.NoError(t, err)
	want, err := narrow.Apply(s, sample, ts, ctx, ids).Float32s()
	require.NoError(t, err)
	got, err := wide.Apply(s, sample, ts, ctx, ids).Float32s()
	require.NoError(t, err)
	var num, den float64
	for i := range want {
		num += float64(got[i]-want[i]) * float64(got[i]-want[i])
		den += float64(want[i]) * float64(want[i])
	}
	require.Greater(t, math.Sqrt(den/float64(len(want))), 0.1, "the narrow UNet's output is not trivially small")
	require.Less(t, math.Sqrt(num/den), 1e-5, "relative L2 of the widened UNet's output against the narrow one's")

	// conv_in's output channels come in equal pairs; conv_out's inputs in
	// pairs split unequally.
	in, _ := wide.Params().Get("conv_in.weight")
	w, err := in.T.Float32s()
	require.NoError(t, err)
	row := int(in.Shape[1] * in.Shape[2] * in.Shape[3])
	require.Equal(t, w[:row], w[row:2*row], "conv_in's channels 0 and 1")
	out, _ := wide.Params().Get("conv_out.weight")
	o, err := out.T.Float32s()
	require.NoError(t, err)
	k := int(out.Shape[2] * out.Shape[3])
	require.InDelta(t, float64(o[0])*(1-widenSplit)/widenSplit, float64(o[k]), 1e-6, "conv_out's inputs 0 and 1")
	require.NotEqual(t, o[0], o[k])
}
