package nn

import "github.com/onestepvideo/osv-go/torch"

// Adaptable is a layer that can carry a low-rank adapter: Linear and Conv
// (with one group).
type Adaptable interface {
	ModulePath() string
	Base() *torch.Param
	Attach(a *Adapter)
	AdapterShapes(r int64) (a, b []int64)
}

// Adapter is a low-rank update of a layer's weight, W x + Scale·B(A x),
// as LoRA defines it. The layer applies it in its forward pass while it is
// Enabled and not Merged into the base weight.
type Adapter struct {
	A, B    *torch.Param
	Scale   float64
	Enabled bool
	Merged  bool
}

func (a *Adapter) active() bool { return a != nil && a.Enabled && !a.Merged }

// addScaled returns y + scale·d, owned by out.
func addScaled(c, out *torch.Scope, y, d *torch.Tensor, scale float64) *torch.Tensor {
	r := c.Add(y, c.MulScalar(d, scale))
	out.Drop(y)
	return r
}
