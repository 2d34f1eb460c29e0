// Package adversarial holds the hinge losses of OSV's GAN objectives, on
// discriminator logits (any shape; every logit counts once):
//
//	L_D = mean relu(1 − D(real)) + mean relu(1 + D(fake))
//	L_G = −mean D(fake)
//
// The caller detaches the generator's output before the discriminator
// step (sg(x̂0) in OSV.md). With several logit maps (OSV's discriminator has
// one per head), DiscriminatorLoss and GeneratorLoss take lists and average
// the per-map losses.
//
// Entry points: DiscriminatorLoss and GeneratorLoss on gotorch tensors;
// DiscriminatorApply and GeneratorApply on engine tensors.
package adversarial

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// DiscriminatorApply is the hinge loss of the discriminator averaged over
// logit maps: mean_i [mean relu(1 − real_i) + mean relu(1 + fake_i)].
func DiscriminatorApply(s *torch.Scope, real, fake []*torch.Tensor) *torch.Tensor {
	if len(real) == 0 || len(real) != len(fake) {
		torch.Failf("hinge", "%d real and %d fake logit maps: want the same nonzero number", len(real), len(fake))
	}
	c := s.Child()
	defer c.Close()
	var total *torch.Tensor
	for i := range real {
		l := c.Add(c.Mean(c.ReLU(c.RSub(1, real[i])), false), c.Mean(c.ReLU(c.AddScalar(fake[i], 1)), false))
		if total == nil {
			total = l
		} else {
			total = c.Add(total, l)
		}
	}
	return c.Keep(c.MulScalar(total, 1/float64(len(real))))
}

// GeneratorApply is the hinge loss of the generator averaged over logit
// maps: mean_i [−mean fake_i].
func GeneratorApply(s *torch.Scope, fake []*torch.Tensor) *torch.Tensor {
	if len(fake) == 0 {
		torch.Failf("hinge", "no fake logit maps")
	}
	c := s.Child()
	defer c.Close()
	var total *torch.Tensor
	for _, f := range fake {
		l := c.Neg(c.Mean(f, false))
		if total == nil {
			total = l
		} else {
			total = c.Add(total, l)
		}
	}
	return c.Keep(c.MulScalar(total, 1/float64(len(fake))))
}

// DiscriminatorLoss is DiscriminatorApply on gotorch tensors.
func DiscriminatorLoss(real, fake []gotorch.Tensor) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	r, err := imports(s, "real", real)
	if err != nil {
		return gotorch.Tensor{}, err
	}
	f, err := imports(s, "fake", fake)
	if err != nil {
		return gotorch.Tensor{}, err
	}
	return torch.ToGotorch(DiscriminatorApply(s, r, f))
}

// GeneratorLoss is GeneratorApply on gotorch tensors.
func GeneratorLoss(fake []gotorch.Tensor) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	f, err := imports(s, "fake", fake)
	if err != nil {
		return gotorch.Tensor{}, err
	}
	return torch.ToGotorch(GeneratorApply(s, f))
}

func imports(s *torch.Scope, what string, gs []gotorch.Tensor) ([]*torch.Tensor, error) {
	out := make([]*torch.Tensor, len(gs))
	for i, g := range gs {
		t, err := torch.FromGotorch(s, g)
		if err != nil {
			return nil, fmt.Errorf("hinge: %s[%d]: %w", what, i, err)
		}
		out[i] = t
	}
	return out, nil
}
