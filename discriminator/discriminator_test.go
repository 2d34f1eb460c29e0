package discriminator

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// randn draws a tensor on the test device, owned by s.
func randn(t *testing.T, s *torch.Scope, seed uint64, shape ...int64) *torch.Tensor {
	t.Helper()
	g, err := torch.NewGenerator(seed)
	require.NoError(t, err)
	defer g.Close()
	x, err := g.Randn(s, shape, torch.Float32, testDevice)
	require.NoError(t, err)
	return x
}

// newDisc builds a discriminator over the fixture backbone.
func newDisc(t *testing.T, b *Backbone, cfg Config) *Discriminator {
	t.Helper()
	d, err := New(b, cfg, 7)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// apply runs f, turning a panic from an op into an error.
func apply(f func()) (err error) {
	defer torch.Recover(&err)
	f()
	return nil
}

// absSum is Σ|x|.
func absSum(t *testing.T, x *torch.Tensor) float64 {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	var n float64
	for _, f := range v {
		n += math.Abs(float64(f))
	}
	return n
}

// total is the sum of every logit, as a one-element tensor.
func total(s *torch.Scope, logits []*torch.Tensor) *torch.Tensor {
	var sum *torch.Tensor
	for _, l := range logits {
		x := s.Sum(l, false)
		if sum == nil {
			sum = x
		} else {
			sum = s.Add(sum, x)
		}
	}
	return sum
}

// The logits for a [2, 3, 4, 8, 8] latent: per tapped layer, a spatial map
// [B·F, 1, h', w'] and a temporal map [B·h'·w', 1, F], with h' = r·8/patch.
func TestLogitShapes(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{})
	require.Equal(t, EvenTaps(int(b.Config.NumHiddenLayers), 4), d.Config.Layers)
	s := torch.NewScope()
	defer s.Close()
	const bs, frames, h, w = 2, 3, 8, 8
	x := randn(t, s, 1, bs, frames, 4, h, w)
	var logits []*torch.Tensor
	require.NoError(t, apply(func() { logits = d.Apply(s, x) }))
	p := b.Config.PatchSize
	gh, gw := nearestMultiple(4*h, p)/p, nearestMultiple(4*w, p)/p
	require.Len(t, logits, 2*len(d.Config.Layers))
	for j := range d.Config.Layers {
		require.Equal(t, []int64{bs * frames, 1, gh, gw}, logits[2*j].Shape(), "spatial %d", j)
		require.Equal(t, []int64{bs * gh * gw, 1, frames}, logits[2*j+1].Shape(), "temporal %d", j)
		require.Equal(t, torch.Float32, logits[2*j].DType())
		require.Greater(t, absSum(t, logits[2*j]), 0.0)
	}

	// A size off the patch grid is resized to the nearest multiples:
	// r = 3 takes 5×7 latents to 15×21 pixels, resized to 16×20.
	d3 := newDisc(t, b, Config{UpsampleFactor: 3, Layers: []int{1}})
	x = randn(t, s, 2, 1, 2, 4, 5, 7)
	require.NoError(t, apply(func() { logits = d3.Apply(s, x) }))
	require.Len(t, logits, 2)
	require.Equal(t, []int64{2, 1, nearestMultiple(15, p) / p, nearestMultiple(21, p) / p}, logits[0].Shape())
	require.Equal(t, []int64{nearestMultiple(15, p) / p * nearestMultiple(21, p) / p, 1, 2}, logits[1].Shape())
}

func TestNearestMultiple(t *testing.T) {
	for _, c := range []struct{ n, p, want int64 }{
		{32, 4, 32}, {15, 4, 16}, {21, 4, 20}, {288, 14, 294}, {512, 14, 518}, {21, 14, 28}, {3, 14, 14},
	} {
		require.Equal(t, c.want, nearestMultiple(c.n, c.p), "%d to a multiple of %d", c.n, c.p)
	}
}

// The gradient of the sum of all logits reaches every head parameter, the
// upsampler and the latents; no backbone weight requires or gets one.
func TestGradientsReachTrainablePartsOnly(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{})
	s := torch.NewScope()
	defer s.Close()
	x := randn(t, s, 3, 2, 3, 4, 8, 8)
	require.NoError(t, x.SetRequiresGrad(true))
	var loss *torch.Tensor
	require.NoError(t, apply(func() { loss = total(s, d.Apply(s, x)) }))
	require.NoError(t, torch.Backward(loss))

	g, err := x.Grad(s)
	require.NoError(t, err)
	require.NotNil(t, g, "latents")
	require.Greater(t, absSum(t, g), 0.0, "latents")

	trainable := d.Trainable()
	require.NotEmpty(t, trainable)
	var sawUpsampler bool
	for _, p := range trainable {
		require.True(t, p.T.RequiresGrad(), p.Name)
		g, err := p.T.Grad(s)
		require.NoError(t, err)
		require.NotNil(t, g, "%s has no gradient", p.Name)
		require.Greater(t, absSum(t, g), 0.0, "%s has a zero gradient", p.Name)
		require.NotContains(t, p.Name, "weight_u")
		sawUpsampler = sawUpsampler || p.Name == "upsampler.conv.weight"
		require.NoError(t, p.T.ZeroGrad())
	}
	require.True(t, sawUpsampler)
	for _, p := range b.Params().List() {
		require.False(t, p.T.RequiresGrad(), p.Name)
		g, err := p.T.Grad(s)
		require.NoError(t, err)
		require.Nil(t, g, "backbone weight %s got a gradient", p.Name)
	}
	for _, sn := range d.snConvs() {
		require.False(t, sn.u.T.RequiresGrad(), sn.u.Name)
	}
}

// A bf16 backbone under float32 heads: the logits are float32 and the
// gradient still reaches the latents through the backbone.
func TestBF16Backbone(t *testing.T) {
	b, err := LoadBackbone(fixtureDinov2(), WithDevice(testDevice.String()), WithDType("bf16"))
	require.NoError(t, err)
	defer b.Close()
	d, err := New(b, Config{}, 1)
	require.NoError(t, err)
	defer d.Close()
	s := torch.NewScope()
	defer s.Close()
	x := randn(t, s, 4, 1, 2, 4, 8, 8)
	require.NoError(t, x.SetRequiresGrad(true))
	var logits []*torch.Tensor
	require.NoError(t, apply(func() { logits = d.Apply(s, x) }))
	for _, l := range logits {
		require.Equal(t, torch.Float32, l.DType())
	}
	require.NoError(t, torch.Backward(total(s, logits)))
	g, err := x.Grad(s)
	require.NoError(t, err)
	require.NotNil(t, g)
	require.Greater(t, absSum(t, g), 0.0)
	require.Equal(t, torch.BFloat16, b.Params().List()[0].T.DType())
}

// The pixel path judges decoded frames without the upsampler; gradients
// reach the pixels and the heads.
func TestPixelPath(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{PixelInput: true})
	for _, p := range d.Trainable() {
		require.NotContains(t, p.Name, "upsampler")
	}
	s := torch.NewScope()
	defer s.Close()
	const bs, frames = 2, 3
	x := s.Tanh(randn(t, s, 5, bs*frames, 3, 30, 42))
	require.NoError(t, x.SetRequiresGrad(true))
	var logits []*torch.Tensor
	require.NoError(t, apply(func() { logits = d.ApplyPixels(s, x, frames) }))
	p := b.Config.PatchSize
	gh, gw := nearestMultiple(30, p)/p, nearestMultiple(42, p)/p
	require.Len(t, logits, 2*len(d.Config.Layers))
	for j := range d.Config.Layers {
		require.Equal(t, []int64{bs * frames, 1, gh, gw}, logits[2*j].Shape())
		require.Equal(t, []int64{bs * gh * gw, 1, frames}, logits[2*j+1].Shape())
	}
	require.NoError(t, torch.Backward(total(s, logits)))
	for _, p := range d.Trainable() {
		g, err := p.T.Grad(s)
		require.NoError(t, err)
		require.NotNil(t, g, p.Name)
		require.Greater(t, absSum(t, g), 0.0, p.Name)
	}

	// Latents need the upsampler this discriminator does not have.
	err := apply(func() { d.Apply(s, randn(t, s, 6, 1, 2, 4, 8, 8)) })
	require.ErrorContains(t, err, "pixel_input")

	// A latent discriminator judges pixels too, leaving its upsampler out.
	dl := newDisc(t, b, Config{})
	require.NoError(t, apply(func() { logits = dl.ApplyPixels(s, s.Detach(x), frames) }))
	require.NoError(t, torch.Backward(total(s, logits)))
	up, _ := dl.state.Get("upsampler.conv.weight")
	g, err := up.T.Grad(s)
	require.NoError(t, err)
	require.Nil(t, g)
}

// The logit layout: changing frame 1 of video 0 changes only that frame's
// row of each spatial map and only video 0's rows of each temporal map.
func TestLogitLayout(t *testing.T) {
	b := loadBackbone(t)
	d := newDisc(t, b, Config{})
	d.SetTraining(false)
	s := torch.NewScope()
	defer s.Close()
	const bs, frames = 2, 3
	x := randn(t, s, 12, bs, frames, 4, 8, 8)
	other := randn(t, s, 13, 1, 1, 4, 8, 8)
	v0 := s.Cat(1, s.Slice(s.Slice(x, 0, 0, 1), 1, 0, 1), other, s.Slice(s.Slice(x, 0, 0, 1), 1, 2, 3))
	y := s.Cat(0, v0, s.Slice(x, 0, 1, 2))
	a, c := logitValues(t, d, x), logitValues(t, d, y)
	rowsDiffer := func(p, q []float32, rows int) []bool {
		n := len(p) / rows
		out := make([]bool, rows)
		for r := range rows {
			for i := r * n; i < (r+1)*n; i++ {
				if p[i] != q[i] {
					out[r] = true
				}
			}
		}
		return out
	}
	for j := range d.Config.Layers {
		require.Equal(t, []bool{false, true, false, false, false, false}, rowsDiffer(a[2*j], c[2*j], bs*frames), "spatial %d", j)
		videos := rowsDiffer(a[2*j+1], c[2*j+1], bs)
		require.Equal(t, []bool{true, false}, videos, "temporal %d", j)
	}
}
