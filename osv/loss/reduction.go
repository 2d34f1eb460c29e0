package loss

import (
	"fmt"

	"github.com/onestepvideo/osv-go/torch"
)

// Reduction says how per-element losses are combined.
type Reduction int

// Reductions. The zero value is Mean, the losses' usual reduction.
const (
	Mean Reduction = iota // the average over every element
	Sum                   // the sum over every element
	None                  // the per-element values, unreduced
)

func (r Reduction) String() string {
	switch r {
	case Mean:
		return "mean"
	case Sum:
		return "sum"
	case None:
		return "none"
	}
	return fmt.Sprintf("Reduction(%d)", int(r))
}

// Reduce applies r to per-element values x (engine tensors; panics with
// *torch.Error).
func Reduce(s *torch.Scope, x *torch.Tensor, r Reduction) *torch.Tensor {
	switch r {
	case Mean:
		return s.Mean(x, false)
	case Sum:
		return s.Sum(x, false)
	case None:
		return x
	}
	torch.Failf("loss", "unknown reduction %v", r)
	return nil
}
