package discriminator

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// Output is the backbone's result on gotorch tensors, owned by the caller
// (see States for the layout).
type Output struct {
	HiddenStates    []gotorch.Tensor
	LastHiddenState gotorch.Tensor
	PoolerOutput    gotorch.Tensor
}

// Forward runs the backbone on pixel values [N, num_channels, H, W]
// (normalised as DINOv2's image processor does, on the backbone's device).
func (b *Backbone) Forward(pixels gotorch.Tensor) (out Output, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, pixels)
	if err != nil {
		return Output{}, fmt.Errorf("dinov2: pixel_values: %w", err)
	}
	st := b.Apply(s, x)
	all := append(append([]*torch.Tensor{}, st.HiddenStates...), st.LastHiddenState, st.PoolerOutput)
	gs, err := exports(all)
	if err != nil {
		return Output{}, err
	}
	n := len(st.HiddenStates)
	return Output{HiddenStates: gs[:n], LastHiddenState: gs[n], PoolerOutput: gs[n+1]}, nil
}

// Forward judges latents [B, F, latent_channels, h, w] and returns the
// logit maps as Apply lays them out, owned by the caller. With inputs or
// parameters that require gradients, the logits carry the graph.
func (d *Discriminator) Forward(latents gotorch.Tensor) (logits []gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, latents)
	if err != nil {
		return nil, fmt.Errorf("discriminator: latents: %w", err)
	}
	return exports(d.Apply(s, x))
}

// ForwardPixels judges decoded frames [B·F, channels, H, W] in [−1, 1]
// with F frames per video (see ApplyPixels).
func (d *Discriminator) ForwardPixels(pixels gotorch.Tensor, frames int) (logits []gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, pixels)
	if err != nil {
		return nil, fmt.Errorf("discriminator: pixels: %w", err)
	}
	return exports(d.ApplyPixels(s, x, int64(frames)))
}

// exports hands tensors to the caller as gotorch tensors; on error none is
// left behind.
func exports(ts []*torch.Tensor) ([]gotorch.Tensor, error) {
	out := make([]gotorch.Tensor, 0, len(ts))
	for _, t := range ts {
		g, err := torch.ToGotorch(t)
		if err != nil {
			for _, h := range out {
				torch.Release(h)
			}
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}
