package clip

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// ImageEmbeds runs the encoder: pixelValues [N, num_channels, image_size,
// image_size] (as Preprocess returns them) → image_embeds [N,
// projection_dim] in the model's dtype, owned by the caller. The input
// must be on the model's device; it is cast to the model's dtype.
func (m *Model) ImageEmbeds(pixelValues gotorch.Tensor) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if m == nil || m.params == nil || m.patchEmbedding.Weight.T == nil {
		return gotorch.Tensor{}, errClosed
	}
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, pixelValues)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("clip: pixel_values: %w", err)
	}
	return torch.ToGotorch(m.Apply(s, x))
}

// Preprocess turns images [N, C, H, W] with values in [0, 1], any size,
// into the encoder's pixel_values [N, C, Height, Width] (float32, on the
// images' device, owned by the caller), as SVD's pipeline does: blur,
// bicubic resize, CLIP normalisation.
func (p *Preprocessor) Preprocess(images gotorch.Tensor) (gotorch.Tensor, error) {
	return p.run(images, p.Apply)
}

// Resize is the first half of Preprocess: the images blurred and resized
// to Height×Width, still in [0, 1] (float32, owned by the caller).
func (p *Preprocessor) Resize(images gotorch.Tensor) (gotorch.Tensor, error) {
	return p.run(images, p.ResizeApply)
}

func (p *Preprocessor) run(images gotorch.Tensor, f func(*torch.Scope, *torch.Tensor) *torch.Tensor) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if err := p.Validate(); err != nil {
		return gotorch.Tensor{}, err
	}
	s := torch.NewScope()
	defer s.Close()
	x, err := torch.FromGotorch(s, images)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("clip: images: %w", err)
	}
	return torch.ToGotorch(f(s, x))
}
