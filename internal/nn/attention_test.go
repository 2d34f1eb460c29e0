package nn

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// A one-token context takes the shortcut; the same token twice takes the
// general path and must give the same output (two equal keys share the
// weight). Both must match softmax(QKᵀ/√d)V computed by hand.
func TestAttentionSingleKeyShortcut(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g, err := torch.NewGenerator(5)
	require.NoError(t, err)
	defer g.Close()
	ps := torch.NewParams()
	a := NewAttention(ps, "attn2", 16, 12, 2, 8)
	require.NoError(t, ps.InitRandom(g, torch.Float32, torch.CPU))
	defer ps.Free()
	x, _ := g.Randn(s, []int64{3, 7, 16}, torch.Float32, torch.CPU)
	ctx, _ := g.Randn(s, []int64{3, 1, 12}, torch.Float32, torch.CPU)

	var one, two *torch.Tensor
	func() {
		defer torch.Recover(&err)
		one = s.Contiguous(a.Forward(s, x, ctx))
		two = a.Forward(s, x, s.Cat(1, ctx, ctx))
	}()
	require.NoError(t, err)
	require.Equal(t, []int64{3, 7, 16}, one.Shape())
	o1, _ := one.Float32s()
	o2, _ := two.Float32s()
	require.InDeltaSlice(t, o2, o1, 1e-5)

	// And the general path against the formula, for a longer context.
	ctx3, _ := g.Randn(s, []int64{3, 4, 12}, torch.Float32, torch.CPU)
	var got, want *torch.Tensor
	func() {
		defer torch.Recover(&err)
		got = a.Forward(s, x, ctx3)
		split := func(t *torch.Tensor) *torch.Tensor { // [N, T, 16] → [N, 2, T, 8]
			return s.Transpose(s.Reshape(t, t.Size(0), t.Size(1), 2, 8), 1, 2)
		}
		q := split(s.Linear(x, a.ToQ.Weight.T, nil))
		k := split(s.Linear(ctx3, a.ToK.Weight.T, nil))
		v := split(s.Linear(ctx3, a.ToV.Weight.T, nil))
		p := s.Softmax(s.MulScalar(s.Matmul(q, s.Transpose(k, -2, -1)), 1/2.8284271247461903), -1)
		o := s.Reshape(s.Transpose(s.Matmul(p, v), 1, 2), 3, 7, 16)
		want = s.Linear(o, a.ToOut.Weight.T, a.ToOut.Bias.T)
	}()
	require.NoError(t, err)
	gv, _ := got.Float32s()
	wv, _ := want.Float32s()
	require.InDeltaSlice(t, wv, gv, 1e-5)
}
