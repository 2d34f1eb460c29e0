package nn

import "github.com/onestepvideo/osv-go/torch"

// Conv is an N-d convolution (N = len(Kernel)); keys <path>.weight
// [out, in/groups, kernel...] and <path>.bias [out].
type Conv struct {
	Path                      string
	Weight, Bias              *torch.Param
	Stride, Padding, Dilation []int64
	Groups                    int64
	Adapter                   *Adapter
}

// ConvOptions are a convolution's stride, padding, dilation and groups
// (zero values: stride 1, padding 0, dilation 1, one group).
type ConvOptions struct {
	Stride, Padding, Dilation []int64
	Groups                    int64
	NoBias                    bool
}

// NewConv registers a convolution with the given kernel size per spatial dimension.
func NewConv(ps *torch.Params, path string, in, out int64, kernel []int64, o ConvOptions) *Conv {
	n := len(kernel)
	fill := func(v []int64, d int64) []int64 {
		if len(v) == n {
			return v
		}
		out := make([]int64, n)
		for i := range out {
			out[i] = d
			if len(v) == 1 {
				out[i] = v[0]
			}
		}
		return out
	}
	groups := max(o.Groups, 1)
	fanIn := in / groups
	for _, k := range kernel {
		fanIn *= k
	}
	shape := append([]int64{out, in / groups}, kernel...)
	c := &Conv{
		Path:     path,
		Weight:   ps.Add(path+".weight", shape, torch.Init{Kind: torch.InitUniform, FanIn: fanIn}),
		Stride:   fill(o.Stride, 1),
		Padding:  fill(o.Padding, 0),
		Dilation: fill(o.Dilation, 1),
		Groups:   groups,
	}
	if !o.NoBias {
		c.Bias = ps.Add(path+".bias", []int64{out}, torch.Init{Kind: torch.InitUniform, FanIn: fanIn})
	}
	if groups == 1 {
		ps.Register(path, c)
	}
	return c
}

// NewConv2d registers a square-kernel 2-d convolution.
func NewConv2d(ps *torch.Params, path string, in, out, kernel, stride, padding int64) *Conv {
	return NewConv(ps, path, in, out, []int64{kernel, kernel},
		ConvOptions{Stride: []int64{stride}, Padding: []int64{padding}})
}

// Forward convolves x [N, C, spatial...].
func (c *Conv) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return c.forward(s, x, tensorOf(c.Bias))
}

// ForwardSplitBias convolves x without adding the bias and returns the
// bias ([out], nil without one) for a fused operation downstream to add.
func (c *Conv) ForwardSplitBias(s *torch.Scope, x *torch.Tensor) (y, bias *torch.Tensor) {
	return c.forward(s, x, nil), tensorOf(c.Bias)
}

func (c *Conv) forward(s *torch.Scope, x, bias *torch.Tensor) *torch.Tensor {
	defer torch.Annotate(c.Path)
	y := s.Conv(x, c.Weight.T, bias, c.Stride, c.Padding, c.Dilation, c.Groups)
	if a := c.Adapter; a.active() {
		k := s.Child()
		defer k.Close()
		ones := make([]int64, len(c.Stride))
		zeros := make([]int64, len(c.Stride))
		for i := range ones {
			ones[i] = 1
		}
		// A: the layer's own kernel, stride, padding and dilation to r
		// channels; B: a 1×1 convolution back.
		h := k.Conv(x, k.Cast(a.A.T, x.DType()), nil, c.Stride, c.Padding, c.Dilation, 1)
		d := k.Conv(h, k.Cast(a.B.T, x.DType()), nil, ones, zeros, ones, 1)
		return k.Keep(addScaled(k, s, y, d, a.Scale))
	}
	return y
}

// pointwiseOf is the convolution's weight applied to a per-channel vector
// v [in] (W·v, [out]) when the layer is a plain 1×1 convolution (one group,
// stride and dilation 1, no padding, no active adapter), so that
// conv(x + v) = conv(x) + W·v; otherwise nil.
func (c *Conv) pointwiseOf(s *torch.Scope, v *torch.Tensor) *torch.Tensor {
	if c.Groups != 1 || c.Adapter.active() {
		return nil
	}
	for i := range c.Stride {
		if c.Weight.Shape[2+i] != 1 || c.Stride[i] != 1 || c.Dilation[i] != 1 || c.Padding[i] != 0 {
			return nil
		}
	}
	w := s.Reshape(c.Weight.T, c.Weight.Shape[0], c.Weight.Shape[1])
	return s.Reshape(s.Matmul(w, s.Reshape(s.Cast(v, w.DType()), -1, 1)), -1)
}

// ModulePath is the layer's checkpoint path.
func (c *Conv) ModulePath() string { return c.Path }

// Base is the base weight.
func (c *Conv) Base() *torch.Param { return c.Weight }

// Attach sets (or, with nil, removes) the layer's adapter.
func (c *Conv) Attach(a *Adapter) { c.Adapter = a }

// AdapterShapes are LoRA's A [r, in, kernel...] and B [out, r, 1...].
func (c *Conv) AdapterShapes(r int64) (a, b []int64) {
	w := c.Weight.Shape
	a = append([]int64{r, w[1]}, w[2:]...)
	b = []int64{w[0], r}
	for range w[2:] {
		b = append(b, 1)
	}
	return a, b
}
