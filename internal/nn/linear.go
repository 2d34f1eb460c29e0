package nn

import "github.com/onestepvideo/osv-go/torch"

// Linear is y = x Wᵀ + b; keys <path>.weight [out, in] and <path>.bias [out].
type Linear struct {
	Path         string
	Weight, Bias *torch.Param // Bias is nil without bias
	Adapter      *Adapter
}

// NewLinear registers a Linear layer.
func NewLinear(ps *torch.Params, path string, in, out int64, bias bool) *Linear {
	l := &Linear{Path: path, Weight: ps.Add(path+".weight", []int64{out, in}, torch.Init{Kind: torch.InitUniform, FanIn: in})}
	if bias {
		l.Bias = ps.Add(path+".bias", []int64{out}, torch.Init{Kind: torch.InitUniform, FanIn: in})
	}
	ps.Register(path, l)
	return l
}

// Forward applies the layer to the last dimension of x.
func (l *Linear) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(l.Path)
	y := s.Linear(x, l.Weight.T, tensorOf(l.Bias))
	if a := l.Adapter; a.active() {
		c := s.Child()
		defer c.Close()
		d := c.Linear(c.Linear(x, c.Cast(a.A.T, x.DType()), nil), c.Cast(a.B.T, x.DType()), nil)
		return c.Keep(addScaled(c, s, y, d, a.Scale))
	}
	return y
}

// ModulePath is the layer's checkpoint path.
func (l *Linear) ModulePath() string { return l.Path }

// Base is the base weight.
func (l *Linear) Base() *torch.Param { return l.Weight }

// Attach sets (or, with nil, removes) the layer's adapter.
func (l *Linear) Attach(a *Adapter) { l.Adapter = a }

// AdapterShapes are LoRA's A [r, in] and B [out, r] for rank r.
func (l *Linear) AdapterShapes(r int64) (a, b []int64) {
	return []int64{r, l.Weight.Shape[1]}, []int64{l.Weight.Shape[0], r}
}

func tensorOf(p *torch.Param) *torch.Tensor {
	if p == nil {
		return nil
	}
	return p.T
}
