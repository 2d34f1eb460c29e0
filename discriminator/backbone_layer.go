package discriminator

import (
	"math"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// layer is Dinov2Layer, a pre-norm transformer block with layer scale:
//
//	x ← x + λ₁ · attention(norm1(x))
//	x ← x + λ₂ · mlp(norm2(x))
type layer struct {
	path         string
	heads        int64
	headDim      int64
	norm1, norm2 *nn.LayerNorm
	q, k, v, out *nn.Linear
	scale1       *torch.Param // layer_scale1.lambda1
	scale2       *torch.Param // layer_scale2.lambda1
	mlp          *mlp
}

func newLayer(ps *torch.Params, path string, cfg BackboneConfig) *layer {
	d := cfg.HiddenSize
	a := path + ".attention."
	return &layer{
		path:    path,
		heads:   cfg.NumAttentionHeads,
		headDim: cfg.HeadDim(),
		norm1:   nn.NewLayerNorm(ps, path+".norm1", d, cfg.LayerNormEps),
		norm2:   nn.NewLayerNorm(ps, path+".norm2", d, cfg.LayerNormEps),
		q:       nn.NewLinear(ps, a+"attention.query", d, d, cfg.QKVBias),
		k:       nn.NewLinear(ps, a+"attention.key", d, d, cfg.QKVBias),
		v:       nn.NewLinear(ps, a+"attention.value", d, d, cfg.QKVBias),
		out:     nn.NewLinear(ps, a+"output.dense", d, d, true),
		scale1:  ps.Add(path+".layer_scale1.lambda1", []int64{d}, torch.Init{Kind: torch.InitConst, Value: cfg.LayerscaleValue}),
		scale2:  ps.Add(path+".layer_scale2.lambda1", []int64{d}, torch.Init{Kind: torch.InitConst, Value: cfg.LayerscaleValue}),
		mlp:     newMLP(ps, path+".mlp", cfg),
	}
}

// forward maps x [N, T, D] to the block's output, owned by s.
func (l *layer) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(l.path)
	c := s.Child()
	defer c.Close()
	h := l.norm1.Forward(c, x)
	a := l.attention(c, h)
	c.Drop(h)
	x = c.Add(x, c.Mul(a, l.scale1.T))
	c.Drop(a)
	h = l.norm2.Forward(c, x)
	m := l.mlp.forward(c, h)
	c.Drop(h)
	return c.Keep(c.Add(x, c.Mul(m, l.scale2.T)))
}

// attention is Dinov2Attention: multi-head self-attention with softmax
// scale 1/√head_dim, then the output projection.
func (l *layer) attention(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	n, t := x.Size(0), x.Size(1)
	split := func(p *nn.Linear) *torch.Tensor {
		y := p.Forward(c, x)
		return c.Transpose(c.Reshape(y, n, t, l.heads, l.headDim), 1, 2)
	}
	q, k, v := split(l.q), split(l.k), split(l.v)
	o := c.SDPA(q, k, v, 1/math.Sqrt(float64(l.headDim)))
	c.Drop(q, k, v)
	o = c.Reshape(c.Transpose(o, 1, 2), n, t, l.heads*l.headDim)
	return c.Keep(l.out.Forward(c, o))
}

// mlp is Dinov2MLP (fc1, activation, fc2) or, with use_swiglu_ffn,
// Dinov2SwiGLUFFN (weights_in to twice the hidden width, SiLU of the first
// half times the second, weights_out).
type mlp struct {
	path    string
	act     string
	swiglu  bool
	in, out *nn.Linear
}

func newMLP(ps *torch.Params, path string, cfg BackboneConfig) *mlp {
	d, h := cfg.HiddenSize, cfg.MLPHidden()
	if cfg.UseSwiGLUFFN {
		return &mlp{
			path: path, swiglu: true,
			in:  nn.NewLinear(ps, path+".weights_in", d, 2*h, true),
			out: nn.NewLinear(ps, path+".weights_out", h, d, true),
		}
	}
	return &mlp{
		path: path, act: cfg.HiddenAct,
		in:  nn.NewLinear(ps, path+".fc1", d, h, true),
		out: nn.NewLinear(ps, path+".fc2", h, d, true),
	}
}

func (m *mlp) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(m.path)
	c := s.Child()
	defer c.Close()
	h := m.in.Forward(c, x)
	var a *torch.Tensor
	switch {
	case m.swiglu:
		parts := c.Chunk(h, 2, -1)
		a = c.Mul(c.SiLU(parts[0]), parts[1])
	case m.act == GELU:
		a = c.GELU(h)
	default:
		a = c.GELUTanh(h)
	}
	c.Drop(h)
	return c.Keep(m.out.Forward(c, a))
}
