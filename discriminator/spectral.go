package discriminator

import (
	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// snConv is a spectrally normalised convolution (Miyato et al. 2018), as
// PyTorch's spectral_norm computes it: the weight W [out, in, k...] is
// read as a matrix W̄ [out, in·k...] and the layer convolves with W/σ,
// where σ ≈ ‖W̄‖₂ comes from a power iteration on a persistent unit vector
// u [out] (the key <path>.weight_u):
//
//	v = normalize(W̄ᵀ u),  u' = normalize(W̄ v),  σ = u'ᵀ W̄ v
//
// u and v are constants for autograd (computed from W̄ detached), so the
// gradient of σ is u' vᵀ, as in PyTorch. A training forward makes one
// iteration and keeps u' for the next call; an evaluation forward makes
// the same iteration without keeping it. The bias is not normalised.
type snConv struct {
	path string
	conv *nn.Conv
	u    *torch.Param
}

func newSNConv(ps *torch.Params, path string, in, out int64, kernel []int64) *snConv {
	pad := make([]int64, len(kernel))
	for i, k := range kernel {
		pad[i] = k / 2
	}
	return &snConv{
		path: path,
		conv: nn.NewConv(ps, path, in, out, kernel, nn.ConvOptions{Padding: pad}),
		u:    ps.Add(path+".weight_u", []int64{out}, torch.Init{Kind: torch.InitOnes}),
	}
}

// normalize is x/max(‖x‖, 1e-12) for a vector x.
func normalize(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return s.Div(x, s.ClampMin(s.Sqrt(s.Sum(s.Square(x), false)), 1e-12))
}

// power makes one power iteration from u on the detached matrix m and
// returns the new u and v.
func power(s *torch.Scope, m, u *torch.Tensor) (u2, v *torch.Tensor) {
	v = normalize(s, s.Matmul(s.Transpose(m, 0, 1), u))
	return normalize(s, s.Matmul(m, v)), v
}

// sigma is the spectral norm estimate of the weight, differentiable in it;
// with train, u takes its update in place. In place, because a recorded
// training step (a CUDA graph) reads and writes the tensors it was
// recorded with: a u replaced by a new tensor would leave every replay
// reading the u of the recording, freed since.
func (l *snConv) sigma(s *torch.Scope, train bool) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	w := l.conv.Weight.T
	mat := c.Reshape(w, w.Size(0), -1)
	u, v := power(c, c.Detach(mat), l.u.T)
	sig := c.Sum(c.Mul(u, c.Matmul(mat, v)), false)
	if train {
		if err := torch.CopyInto(l.u.T, u); err != nil {
			torch.Failf("spectral_norm", "%v", err)
		}
	}
	return c.Keep(sig)
}

// forward convolves x [N, in, spatial...] with W/σ.
func (l *snConv) forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	defer torch.Annotate(l.path)
	c := s.Child()
	defer c.Close()
	cv := l.conv
	w := c.Div(cv.Weight.T, l.sigma(c, train))
	return c.Keep(c.Conv(x, w, cv.Bias.T, cv.Stride, cv.Padding, cv.Dilation, cv.Groups))
}

// warmUp makes n power iterations without gradients, so that σ is close
// to ‖W̄‖₂ from the first forward pass (PyTorch's parametrised spectral
// norm does 15 at construction).
func (l *snConv) warmUp(n int) {
	s := torch.NewScope()
	defer s.Close()
	w := l.conv.Weight.T
	m := s.Detach(s.Reshape(w, w.Size(0), -1))
	u := l.u.T
	for range n {
		u, _ = power(s, m, u)
	}
	if err := torch.CopyInto(l.u.T, u); err != nil {
		torch.Failf("spectral_norm", "%v", err)
	}
}
