package nn

import "github.com/onestepvideo/osv-go/torch"

// GroupNorm normalises channel groups of x [N, C, ...]; keys <path>.weight
// and <path>.bias [C].
type GroupNorm struct {
	Path         string
	Groups       int64
	Eps          float64
	Weight, Bias *torch.Param
}

// NewGroupNorm registers an affine GroupNorm.
func NewGroupNorm(ps *torch.Params, path string, groups, channels int64, eps float64) *GroupNorm {
	return &GroupNorm{
		Path: path, Groups: groups, Eps: eps,
		Weight: ps.Add(path+".weight", []int64{channels}, torch.Init{Kind: torch.InitOnes}),
		Bias:   ps.Add(path+".bias", []int64{channels}, torch.Init{Kind: torch.InitZeros}),
	}
}

// Forward normalises x.
func (g *GroupNorm) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(g.Path)
	return s.GroupNorm(x, g.Groups, g.Weight.T, g.Bias.T, g.Eps)
}

// ForwardAct is act(GroupNorm(x + bias)): bias (nil, [C] or [N, C]) is
// an input offset per channel, such as the bias a convolution left out
// (Conv.ForwardSplitBias), and silu applies SiLU. One fused pass where
// torch.Scope.GroupNormAct has kernels.
func (g *GroupNorm) ForwardAct(s *torch.Scope, x, bias *torch.Tensor, silu bool) *torch.Tensor {
	defer torch.Annotate(g.Path)
	return s.GroupNormAct(x, g.Groups, g.Weight.T, g.Bias.T, g.Eps, bias, silu)
}

// LayerNorm normalises the last dimension; keys <path>.weight, <path>.bias [D].
type LayerNorm struct {
	Path         string
	Dim          int64
	Eps          float64
	Weight, Bias *torch.Param
}

// NewLayerNorm registers an affine LayerNorm over the last dimension.
func NewLayerNorm(ps *torch.Params, path string, dim int64, eps float64) *LayerNorm {
	return &LayerNorm{
		Path: path, Dim: dim, Eps: eps,
		Weight: ps.Add(path+".weight", []int64{dim}, torch.Init{Kind: torch.InitOnes}),
		Bias:   ps.Add(path+".bias", []int64{dim}, torch.Init{Kind: torch.InitZeros}),
	}
}

// Forward normalises x.
func (l *LayerNorm) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(l.Path)
	return s.LayerNorm(x, []int64{l.Dim}, l.Weight.T, l.Bias.T, l.Eps)
}
