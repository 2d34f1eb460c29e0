package nn

import (
	"math"

	"github.com/onestepvideo/osv-go/torch"
)

// Attention is diffusers' Attention with its default processor:
// to_q, to_k, to_v (no bias), to_out.0 (with bias), heads of HeadDim
// channels, scaled dot-product attention with scale 1/√HeadDim.
type Attention struct {
	Path           string
	Heads, HeadDim int64
	ToQ, ToK, ToV  *Linear
	ToOut          *Linear
	CrossAttention bool
}

// NewAttention registers an attention layer. contextDim 0 makes it
// self-attention.
func NewAttention(ps *torch.Params, path string, queryDim, contextDim, heads, headDim int64) *Attention {
	inner := heads * headDim
	kv := queryDim
	if contextDim > 0 {
		kv = contextDim
	}
	return &Attention{
		Path: path, Heads: heads, HeadDim: headDim, CrossAttention: contextDim > 0,
		ToQ:   NewLinear(ps, path+".to_q", queryDim, inner, false),
		ToK:   NewLinear(ps, path+".to_k", kv, inner, false),
		ToV:   NewLinear(ps, path+".to_v", kv, inner, false),
		ToOut: NewLinear(ps, path+".to_out.0", inner, queryDim, true),
	}
}

// Forward attends from x [N, T, query_dim] to context [N, S, context_dim]
// (to x itself when context is nil).
func (a *Attention) Forward(s *torch.Scope, x, context *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(a.Path)
	c := s.Child()
	defer c.Close()
	if context == nil {
		context = x
	} else if context.Size(1) == 1 {
		// One key: its softmax weight is exactly 1 for every query, so the
		// output is to_out(to_v(context)) whatever the queries are.
		v := a.ToV.Forward(c, context)
		o := a.ToOut.Forward(c, v)
		return c.Keep(c.Expand(o, x.Size(0), x.Size(1), o.Size(2)))
	}
	heads := func(l *Linear, in *torch.Tensor) *torch.Tensor {
		t := l.Forward(c, in)
		h := c.Transpose(c.Reshape(t, t.Size(0), t.Size(1), a.Heads, a.HeadDim), 1, 2)
		c.Drop(t) // the view keeps the storage
		return h
	}
	q, k, v := heads(a.ToQ, x), heads(a.ToK, context), heads(a.ToV, context)
	o := c.SDPA(q, k, v, 1/math.Sqrt(float64(a.HeadDim)))
	c.Drop(q, k, v)
	o = c.Reshape(c.Transpose(o, 1, 2), x.Size(0), x.Size(1), a.Heads*a.HeadDim)
	return c.Keep(a.ToOut.Forward(c, o))
}

// FeedForward is diffusers' FeedForward with GEGLU: net.0.proj maps dim to
// 2·inner, the first half gated by GELU of the second, then net.2 maps inner
// to dimOut.
type FeedForward struct {
	Path string
	Proj *Linear // net.0.proj
	Out  *Linear // net.2
}

// NewFeedForward registers a GEGLU feed-forward with inner size mult·dim.
func NewFeedForward(ps *torch.Params, path string, dim, dimOut, mult int64) *FeedForward {
	inner := dim * mult
	return &FeedForward{
		Path: path,
		Proj: NewLinear(ps, path+".net.0.proj", dim, 2*inner, true),
		Out:  NewLinear(ps, path+".net.2", inner, dimOut, true),
	}
}

// Forward applies the feed-forward to the last dimension of x.
func (f *FeedForward) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(f.Path)
	c := s.Child()
	defer c.Close()
	h := f.Proj.Forward(c, x)
	gated := c.GEGLU(h)
	c.Drop(h)
	return c.Keep(f.Out.Forward(c, gated))
}
