package clip

import (
	"math"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// encoderLayer is CLIPEncoderLayer: pre-norm self-attention and MLP, each
// added back to its input.
type encoderLayer struct {
	path                   string
	heads, headDim         int64
	act                    string
	layerNorm1, layerNorm2 *nn.LayerNorm
	q, k, v, out           *nn.Linear // self_attn.{q,k,v,out}_proj, with biases
	fc1, fc2               *nn.Linear // mlp.fc1, mlp.fc2
}

func newEncoderLayer(ps *torch.Params, path string, cfg Config) *encoderLayer {
	d := cfg.HiddenSize
	return &encoderLayer{
		path: path, heads: cfg.NumAttentionHeads, headDim: cfg.HeadDim(), act: cfg.HiddenAct,
		layerNorm1: nn.NewLayerNorm(ps, path+".layer_norm1", d, cfg.LayerNormEps),
		q:          nn.NewLinear(ps, path+".self_attn.q_proj", d, d, true),
		k:          nn.NewLinear(ps, path+".self_attn.k_proj", d, d, true),
		v:          nn.NewLinear(ps, path+".self_attn.v_proj", d, d, true),
		out:        nn.NewLinear(ps, path+".self_attn.out_proj", d, d, true),
		layerNorm2: nn.NewLayerNorm(ps, path+".layer_norm2", d, cfg.LayerNormEps),
		fc1:        nn.NewLinear(ps, path+".mlp.fc1", d, cfg.IntermediateSize, true),
		fc2:        nn.NewLinear(ps, path+".mlp.fc2", cfg.IntermediateSize, d, true),
	}
}

// forward maps tokens x [N, T, D] to [N, T, D].
func (l *encoderLayer) forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(l.path)
	c := s.Child()
	defer c.Close()
	a := l.attention(c, l.layerNorm1.Forward(c, x))
	x = c.Add(x, a)
	c.Drop(a)
	h := l.fc1.Forward(c, l.layerNorm2.Forward(c, x))
	g := activation(c, l.act, h)
	c.Drop(h)
	return c.Keep(c.Add(x, l.fc2.Forward(c, g)))
}

// attention is CLIPAttention: multi-head self-attention with scale
// head_dim^−½.
func (l *encoderLayer) attention(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(l.path + ".self_attn")
	c := s.Child()
	defer c.Close()
	n, t := x.Size(0), x.Size(1)
	split := func(p *nn.Linear) *torch.Tensor {
		y := p.Forward(c, x)
		return c.Transpose(c.Reshape(y, n, t, l.heads, l.headDim), 1, 2)
	}
	o := c.SDPA(split(l.q), split(l.k), split(l.v), 1/math.Sqrt(float64(l.headDim)))
	o = c.Reshape(c.Transpose(o, 1, 2), n, t, l.heads*l.headDim)
	return c.Keep(l.out.Forward(c, o))
}

// activation applies config.json's hidden_act (one Validate accepts).
func activation(s *torch.Scope, name string, x *torch.Tensor) *torch.Tensor {
	switch name {
	case QuickGELU:
		return s.Mul(x, s.Sigmoid(s.MulScalar(x, 1.702)))
	case GELUNew, GELUTanh:
		return s.GELUTanh(x)
	case GELU:
		return s.GELU(x)
	}
	torch.Failf("activation", "hidden_act %q is not supported", name)
	return nil
}
