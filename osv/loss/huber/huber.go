// Package huber is the pseudo-Huber distance used as OSV's d(·,·):
//
//	d(a, b) = √((a − b)² + c²) − c
//
// elementwise. It behaves as (a − b)²/(2c) for |a − b| ≪ c and as
// |a − b| − c for |a − b| ≫ c, so it is smooth like L2 near zero and robust
// like L1 far from it (Song & Dhariwal 2023, improved consistency training).
// OSV uses c = 0.001 (DefaultC).
//
// Entry points: Loss on gotorch tensors; Apply on engine tensors for the
// module's own packages.
package huber

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/osv/loss"
	"github.com/onestepvideo/osv-go/torch"
)

// DefaultC is OSV's pseudo-Huber constant.
const DefaultC = 0.001

// Apply returns d(a, b) with c, reduced by r, computed in a's dtype (float32
// or wider recommended). a and b must have the same shape.
func Apply(s *torch.Scope, a, b *torch.Tensor, c float64, r loss.Reduction) *torch.Tensor {
	if c <= 0 {
		torch.Failf("pseudo_huber", "c must be positive, got %g", c)
	}
	if !equal(a.Shape(), b.Shape()) {
		torch.Failf("pseudo_huber", "shapes differ: %v and %v", a.Shape(), b.Shape())
	}
	k := s.Child()
	defer k.Close()
	d := k.AddScalar(k.Sqrt(k.AddScalar(k.Square(k.Sub(a, b)), c*c)), -c)
	return k.Keep(loss.Reduce(k, d, r))
}

// Loss is Apply on gotorch tensors; the result belongs to the caller.
func Loss(a, b gotorch.Tensor, c float64, r loss.Reduction) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	ta, err := torch.FromGotorch(s, a)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("pseudo_huber: a: %w", err)
	}
	tb, err := torch.FromGotorch(s, b)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("pseudo_huber: b: %w", err)
	}
	return torch.ToGotorch(Apply(s, ta, tb, c, r))
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
