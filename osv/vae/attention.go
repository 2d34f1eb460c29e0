package vae

import (
	"math"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// attention is the self-attention of the VAE's middle blocks (diffusers'
// Attention with a group norm, biased projections and a residual
// connection): every image attends over its own H·W positions.
//
//	out = x + to_out(attn(q, k, v of group_norm(x)))
//
// (diffusers' rescale_output_factor, the divisor of out, is 1 in both the
// encoder's and the decoder's middle block.)
type attention struct {
	path           string
	heads, headDim int64
	norm           *nn.GroupNorm
	toQ, toK, toV  *nn.Linear
	toOut          *nn.Linear
}

// newAttention registers an attention over channels split into heads of
// headDim (diffusers' VAEs use one head of all channels).
func newAttention(ps *torch.Params, path string, channels, headDim int64, eps float64) *attention {
	return &attention{
		path: path, heads: channels / headDim, headDim: headDim,
		norm:  nn.NewGroupNorm(ps, path+".group_norm", groups, channels, eps),
		toQ:   nn.NewLinear(ps, path+".to_q", channels, channels, true),
		toK:   nn.NewLinear(ps, path+".to_k", channels, channels, true),
		toV:   nn.NewLinear(ps, path+".to_v", channels, channels, true),
		toOut: nn.NewLinear(ps, path+".to_out.0", channels, channels, true),
	}
}

// forward maps x [N, C, H, W] to the same shape.
func (a *attention) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(a.path)
	c := s.Child()
	defer c.Close()
	n, ch, h, w := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	normed := a.norm.Forward(c, x)
	tokens := c.Transpose(c.Reshape(normed, n, ch, h*w), 1, 2) // [N, H·W, C]
	split := func(l *nn.Linear) *torch.Tensor {
		t := l.Forward(c, tokens)
		return c.Transpose(c.Reshape(t, n, h*w, a.heads, a.headDim), 1, 2)
	}
	q, k, v := split(a.toQ), split(a.toK), split(a.toV)
	c.Drop(normed, tokens)
	o := c.SDPA(q, k, v, 1/math.Sqrt(float64(a.headDim)))
	c.Drop(q, k, v)
	o = a.toOut.Forward(c, c.Reshape(c.Transpose(o, 1, 2), n, h*w, ch))
	o = c.Reshape(c.Transpose(o, 1, 2), n, ch, h, w)
	return c.Keep(c.Add(o, x))
}
