package unet

import (
	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// basicTransformerBlock is diffusers' BasicTransformerBlock as SVD uses it:
// self-attention, cross-attention, GEGLU feed-forward, each after a
// LayerNorm and added back.
type basicTransformerBlock struct {
	path                string
	norm1, norm2, norm3 *nn.LayerNorm
	attn1, attn2        *nn.Attention
	ff                  *nn.FeedForward
}

func newBasicTransformerBlock(ps *torch.Params, path string, dim, heads, headDim, contextDim int64) *basicTransformerBlock {
	return &basicTransformerBlock{
		path:  path,
		norm1: nn.NewLayerNorm(ps, path+".norm1", dim, 1e-5),
		attn1: nn.NewAttention(ps, path+".attn1", dim, 0, heads, headDim),
		norm2: nn.NewLayerNorm(ps, path+".norm2", dim, 1e-5),
		attn2: nn.NewAttention(ps, path+".attn2", dim, contextDim, heads, headDim),
		norm3: nn.NewLayerNorm(ps, path+".norm3", dim, 1e-5),
		ff:    nn.NewFeedForward(ps, path+".ff", dim, dim, 4),
	}
}

// forward maps x [N, T, C] attending to context [N, S, D].
func (b *basicTransformerBlock) forward(s *torch.Scope, x, context *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	x = residual(c, x, func(n *torch.Tensor) *torch.Tensor { return b.attn1.Forward(c, n, nil) }, b.norm1)
	x = residual(c, x, func(n *torch.Tensor) *torch.Tensor { return b.attn2.Forward(c, n, context) }, b.norm2)
	x = residual(c, x, func(n *torch.Tensor) *torch.Tensor { return b.ff.Forward(c, n) }, b.norm3)
	return c.Keep(x)
}

// residual is x + f(norm(x)), dropping the intermediates and, when c owns
// it, x itself.
func residual(c *torch.Scope, x *torch.Tensor, f func(*torch.Tensor) *torch.Tensor, norm *nn.LayerNorm) *torch.Tensor {
	n := norm.Forward(c, x)
	y := f(n)
	c.Drop(n)
	out := c.Add(y, x)
	c.Drop(y, x)
	return out
}

// temporalBasicTransformerBlock is diffusers' TemporalBasicTransformerBlock:
// the tokens of each spatial position attend across frames.
type temporalBasicTransformerBlock struct {
	path                string
	normIn              *nn.LayerNorm
	ffIn                *nn.FeedForward
	norm1, norm2, norm3 *nn.LayerNorm
	attn1, attn2        *nn.Attention
	ff                  *nn.FeedForward
}

func newTemporalBasicTransformerBlock(ps *torch.Params, path string, dim, heads, headDim, contextDim int64) *temporalBasicTransformerBlock {
	return &temporalBasicTransformerBlock{
		path:   path,
		normIn: nn.NewLayerNorm(ps, path+".norm_in", dim, 1e-5),
		ffIn:   nn.NewFeedForward(ps, path+".ff_in", dim, dim, 4),
		norm1:  nn.NewLayerNorm(ps, path+".norm1", dim, 1e-5),
		attn1:  nn.NewAttention(ps, path+".attn1", dim, 0, heads, headDim),
		norm2:  nn.NewLayerNorm(ps, path+".norm2", dim, 1e-5),
		attn2:  nn.NewAttention(ps, path+".attn2", dim, contextDim, heads, headDim),
		norm3:  nn.NewLayerNorm(ps, path+".norm3", dim, 1e-5),
		ff:     nn.NewFeedForward(ps, path+".ff", dim, dim, 4),
	}
}

// forward maps x [BF, S, C] (S spatial tokens) with context [B·S, L, D].
func (b *temporalBasicTransformerBlock) forward(s *torch.Scope, x, context *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(b.path)
	c := s.Child()
	defer c.Close()
	bf, seq, ch := x.Size(0), x.Size(1), x.Size(2)
	batch := bf / frames
	// [B, F, S, C] → [B·S, F, C]
	h := c.Reshape(c.Permute(c.Reshape(x, batch, frames, seq, ch), 0, 2, 1, 3), batch*seq, frames, ch)
	h = residual(c, h, func(n *torch.Tensor) *torch.Tensor { return b.ffIn.Forward(c, n) }, b.normIn)
	h = residual(c, h, func(n *torch.Tensor) *torch.Tensor { return b.attn1.Forward(c, n, nil) }, b.norm1)
	h = residual(c, h, func(n *torch.Tensor) *torch.Tensor { return b.attn2.Forward(c, n, context) }, b.norm2)
	h = residual(c, h, func(n *torch.Tensor) *torch.Tensor { return b.ff.Forward(c, n) }, b.norm3)
	// [B, S, F, C] → [BF, S, C]
	h = c.Reshape(c.Permute(c.Reshape(h, batch, seq, frames, ch), 0, 2, 1, 3), bf, seq, ch)
	return c.Keep(h)
}

// transformerSpatioTemporal is diffusers' TransformerSpatioTemporalModel:
// GroupNorm, proj_in, pairs of spatial and temporal transformer blocks
// blended by a learned α (frame position embedding added before the
// temporal block), proj_out, and the residual.
type transformerSpatioTemporal struct {
	path         string
	channels     int64
	norm         *nn.GroupNorm
	projIn       *nn.Linear
	blocks       []*basicTransformerBlock
	temporal     []*temporalBasicTransformerBlock
	timePosEmbed *nn.TimestepEmbedding
	mixer        *nn.AlphaBlender
	projOut      *nn.Linear
}

func newTransformerSpatioTemporal(ps *torch.Params, path string, heads, headDim, in, layers, contextDim int64) *transformerSpatioTemporal {
	inner := heads * headDim
	t := &transformerSpatioTemporal{
		path:     path,
		channels: in,
		norm:     nn.NewGroupNorm(ps, path+".norm", groups, in, 1e-6),
		projIn:   nn.NewLinear(ps, path+".proj_in", in, inner, true),
	}
	for i := range layers {
		t.blocks = append(t.blocks, newBasicTransformerBlock(ps, path+".transformer_blocks."+itoa(i), inner, heads, headDim, contextDim))
	}
	for i := range layers {
		t.temporal = append(t.temporal, newTemporalBasicTransformerBlock(ps, path+".temporal_transformer_blocks."+itoa(i), inner, heads, headDim, contextDim))
	}
	t.timePosEmbed = nn.NewTimestepEmbedding(ps, path+".time_pos_embed", in, 4*in, in)
	t.mixer = nn.NewAlphaBlender(ps, path+".time_mixer", 0.5, false)
	t.projOut = nn.NewLinear(ps, path+".proj_out", inner, in, true)
	return t
}

// forward maps x [BF, C, H, W] with context [BF, L, D].
func (t *transformerSpatioTemporal) forward(s *torch.Scope, x, context *torch.Tensor, frames int64) *torch.Tensor {
	defer torch.Annotate(t.path)
	c := s.Child()
	defer c.Close()
	bf, ch, ht, wd := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	batch := bf / frames
	hw := ht * wd
	l, d := context.Size(1), context.Size(2)

	// The temporal blocks attend to the first frame's context, one copy per
	// spatial position: [B·H·W, L, D].
	first := c.Select(c.Reshape(context, batch, frames, l, d), 1, 0)
	timeContext := c.Reshape(c.Expand(c.Reshape(first, batch, 1, l, d), batch, hw, l, d), batch*hw, l, d)

	n := t.norm.Forward(c, x)
	tokens := c.Reshape(c.Permute(n, 0, 2, 3, 1), bf, hw, ch)
	c.Drop(n)
	h := t.projIn.Forward(c, tokens)
	c.Drop(tokens)

	// Frame position embedding: frame index 0..F−1 for every clip.
	idx, err := torch.Arange(c, 0, float64(frames), 1, torch.Float32, x.Device())
	if err != nil {
		torch.Failf("arange", "%v", err)
	}
	idx = c.Reshape(c.Expand(c.Reshape(idx, 1, frames), batch, frames), bf)
	emb := t.timePosEmbed.Forward(c, c.Cast(nn.Timesteps(c, idx, t.channels, true, 0), h.DType()))
	emb = c.Reshape(emb, bf, 1, emb.Size(1))

	for i, block := range t.blocks {
		spatial := block.forward(c, h, context)
		c.Drop(h)
		withPos := c.Add(spatial, emb)
		mix := t.temporal[i].forward(c, withPos, timeContext, frames)
		c.Drop(withPos)
		h = t.mixer.Forward(c, spatial, mix)
		c.Drop(spatial, mix)
	}
	out := t.projOut.Forward(c, h)
	c.Drop(h)
	h = c.Permute(c.Reshape(out, bf, ht, wd, ch), 0, 3, 1, 2)
	// The residual first: the sum takes its contiguous layout.
	return c.Keep(c.Add(x, h))
}
