package nn

import (
	"math"

	"github.com/onestepvideo/osv-go/torch"
)

// Timesteps is diffusers' sinusoidal embedding of t [N] into [N, dim]:
// frequencies exp(−ln(10000)·i/(dim/2 − shift)) for i < dim/2, the sines
// then the cosines (cosines first with flipSinToCos), zero-padded when dim is
// odd. The result has t's dtype unless t is an integer type (then float32).
func Timesteps(s *torch.Scope, t *torch.Tensor, dim int64, flipSinToCos bool, shift float64) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	half := dim / 2
	freqs, err := torch.Arange(c, 0, float64(half), 1, torch.Float32, t.Device())
	if err != nil {
		torch.Failf("timesteps", "%v", err)
	}
	freqs = c.Exp(c.MulScalar(freqs, -math.Log(10000)/(float64(half)-shift)))
	arg := c.Mul(c.Reshape(c.Cast(t, torch.Float32), -1, 1), c.Reshape(freqs, 1, -1))
	sin, cos := c.Sin(arg), c.Cos(arg)
	var emb *torch.Tensor
	if flipSinToCos {
		emb = c.Cat(-1, cos, sin)
	} else {
		emb = c.Cat(-1, sin, cos)
	}
	if dim%2 == 1 {
		emb = c.Cat(-1, emb, c.Filled(emb, 0, emb.Size(0), 1))
	}
	return c.Keep(emb)
}

// TimestepEmbedding is diffusers' TimestepEmbedding: linear_1, SiLU, linear_2.
type TimestepEmbedding struct {
	Path             string
	Linear1, Linear2 *Linear
}

// NewTimestepEmbedding registers linear_1 [in → hidden] and linear_2
// [hidden → out].
func NewTimestepEmbedding(ps *torch.Params, path string, in, hidden, out int64) *TimestepEmbedding {
	return &TimestepEmbedding{
		Path:    path,
		Linear1: NewLinear(ps, path+".linear_1", in, hidden, true),
		Linear2: NewLinear(ps, path+".linear_2", hidden, out, true),
	}
}

// Forward embeds x [N, in].
func (e *TimestepEmbedding) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(e.Path)
	c := s.Child()
	defer c.Close()
	return c.Keep(e.Linear2.Forward(c, c.SiLU(e.Linear1.Forward(c, x))))
}
