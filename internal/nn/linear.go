package nn

import "github.com/onestepvideo/osv-go/internal/torch"

// Linear is y = x Wᵀ + b; keys <path>.weight [out, in] and <path>.bias [out].
type Linear struct {
	Path         string
	Weight, Bias *Param // Bias is nil without bias
}

// NewLinear registers a Linear layer.
func NewLinear(ps *Params, path string, in, out int64, bias bool) *Linear {
	l := &Linear{Path: path, Weight: ps.Add(path+".weight", []int64{out, in}, Init{Kind: InitUniform, FanIn: in})}
	if bias {
		l.Bias = ps.Add(path+".bias", []int64{out}, Init{Kind: InitUniform, FanIn: in})
	}
	return l
}

// Forward applies the layer to the last dimension of x.
func (l *Linear) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(l.Path)
	return s.Linear(x, l.Weight.T, tensorOf(l.Bias))
}

func tensorOf(p *Param) *torch.Tensor {
	if p == nil {
		return nil
	}
	return p.T
}
