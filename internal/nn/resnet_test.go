package nn

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// A pending input bias gives what adding it to the input gives: folded
// into the first GroupNorm and the residual sum, through a 1×1 shortcut
// (or, with an adapter on the shortcut, added before it), and in the
// spatio-temporal block around the spatial part.
func TestForwardBiasedEqualsBiasedInput(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, err := torch.NewGenerator(8)
	require.NoError(t, err)
	defer g.Close()
	ps := torch.NewParams()
	same := NewResnetBlock2D(ps, "same", 16, 16, 0, 4, 1e-6)
	wider := NewResnetBlock2D(ps, "wider", 16, 24, 0, 4, 1e-6)
	st := NewSpatioTemporalResBlock(ps, "st", 16, 8, 0, SpatioTemporalOptions{Groups: 4, Eps: 1e-6, TemporalEps: 1e-5, MergeFactor: 0.3, Switch: true})
	as, bs := wider.Shortcut.AdapterShapes(2)
	adapter := &Adapter{A: ps.Add("lora.A", as, torch.Init{Kind: torch.InitUniform, FanIn: 16}), B: ps.Add("lora.B", bs, torch.Init{Kind: torch.InitUniform, FanIn: 2}), Scale: 0.5}
	wider.Shortcut.Attach(adapter)
	require.NoError(t, ps.InitRandom(g, torch.Float32, torch.CPU))
	defer ps.Free()
	x, _ := g.Randn(s, []int64{6, 16, 5, 7}, torch.Float32, torch.CPU)
	xb, _ := g.Randn(s, []int64{16}, torch.Float32, torch.CPU)
	whole := s.Add(x, s.Reshape(xb, 1, 16, 1, 1))
	check := func(name string, got, want *torch.Tensor) {
		t.Helper()
		require.Equal(t, want.Shape(), got.Shape(), name)
		gv, _ := got.Float32s()
		wv, _ := want.Float32s()
		require.InDeltaSlice(t, wv, gv, 2e-4, name)
	}
	var err2 error
	func() {
		defer torch.Recover(&err2)
		check("no shortcut", same.ForwardBiased(s, x, xb, nil), same.Forward(s, whole, nil))
		check("1×1 shortcut", wider.ForwardBiased(s, x, xb, nil), wider.Forward(s, whole, nil))
		adapter.Enabled = true
		check("1×1 shortcut with an adapter", wider.ForwardBiased(s, x, xb, nil), wider.Forward(s, whole, nil))
		check("spatio-temporal", st.ForwardBiased(s, x, xb, nil, 3), st.Forward(s, whole, nil, 3))
	}()
	require.NoError(t, err2)
}
