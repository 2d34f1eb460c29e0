package discriminator

import (
	"fmt"

	"github.com/onestepvideo/osv-go/torch"
)

// DINOv2's image processor normalisation (ImageNet statistics).
var (
	pixelMean = []float32{0.485, 0.456, 0.406}
	pixelStd  = []float32{0.229, 0.224, 0.225}
)

// Apply judges latents [B, F, latent_channels, h, w] (SVD's scaled latent
// space, any float dtype, on the backbone's device): each frame goes
// through the upsampler to [B·F, channels, H, W] with H and W the multiples
// of the patch size nearest to r·h and r·w, then through the backbone up
// to the last tapped layer. For the j-th tapped layer the result holds, at
// index 2j, the spatial head's logits [B·F, 1, h', w'] (frame-major, h' =
// H/patch, w' = W/patch) and, at 2j+1, the temporal head's logits
// [B·h'·w', 1, F] (batch-major, then grid positions row by row). Logits are
// float32 and owned by s. Gradients reach the latents, the upsampler and
// the heads. It panics with *torch.Error.
func (d *Discriminator) Apply(s *torch.Scope, latents *torch.Tensor) []*torch.Tensor {
	if !d.loaded() {
		panic(&torch.Error{Op: "discriminator", Err: errClosed})
	}
	if d.up == nil {
		torch.Failf("discriminator", "built with pixel_input: judge decoded pixels with ApplyPixels")
	}
	if err := d.checkLatents(latents); err != nil {
		panic(&torch.Error{Op: "discriminator", Err: err})
	}
	c := s.Child()
	defer c.Close()
	sh := latents.Shape()
	b, f := sh[0], sh[1]
	x := c.Reshape(c.Cast(latents, torch.Float32), b*f, sh[2], sh[3], sh[4])
	return keepAll(c, d.judge(c, d.up.forward(c, x), b, f))
}

// ApplyPixels judges decoded frames instead of latents (the ablation with
// the VAE decoder): pixels [B·F, channels, H, W] in [−1, 1], frame-major,
// and the number of frames F per video. The pixels are mapped to [0, 1],
// normalised with DINOv2's ImageNet mean and standard deviation and
// resized bilinearly to the nearest multiples of the patch size; the
// upsampler is not used. The logits are laid out as Apply's.
func (d *Discriminator) ApplyPixels(s *torch.Scope, pixels *torch.Tensor, frames int64) []*torch.Tensor {
	if !d.loaded() {
		panic(&torch.Error{Op: "discriminator", Err: errClosed})
	}
	if err := d.checkPixels(pixels, frames); err != nil {
		panic(&torch.Error{Op: "discriminator", Err: err})
	}
	c := s.Child()
	defer c.Close()
	dev := d.backbone.device
	mean, err := torch.FromFloat32(c, pixelMean, []int64{1, 3, 1, 1}, torch.Float32, dev)
	if err != nil {
		torch.Failf("discriminator", "%v", err)
	}
	std, err := torch.FromFloat32(c, pixelStd, []int64{1, 3, 1, 1}, torch.Float32, dev)
	if err != nil {
		torch.Failf("discriminator", "%v", err)
	}
	x := c.AddScalar(c.MulScalar(c.Cast(pixels, torch.Float32), 0.5), 0.5)
	x = c.Div(c.Sub(x, mean), std)
	x = fitPatches(c, x, d.backbone.Config.PatchSize)
	return keepAll(c, d.judge(c, x, pixels.Size(0)/frames, frames))
}

// judge runs the backbone on x [B·F, channels, H, W] (float32, sides
// multiples of the patch size) and the heads on the tapped layers; the
// logits are owned by s.
func (d *Discriminator) judge(s *torch.Scope, x *torch.Tensor, b, f int64) []*torch.Tensor {
	c := s.Child()
	defer c.Close()
	bb := d.backbone
	patch := bb.Config.PatchSize
	gh, gw := x.Size(2)/patch, x.Size(3)/patch
	n, dim := gh*gw, bb.Config.HiddenSize
	taps := d.Config.Layers
	tapped := map[int]bool{}
	for _, k := range taps {
		tapped[k+1] = true
	}
	hidden := bb.run(c, c.Cast(x, bb.dtype), taps[len(taps)-1]+1, func(i int) bool { return tapped[i] })
	out := make([]*torch.Tensor, 0, 2*len(taps))
	for j, k := range taps {
		hs := hidden[k+1]
		tok := c.Cast(c.Slice(hs, 1, 1, 1+n), torch.Float32) // patch tokens [B·F, N, D]
		grid := c.Reshape(c.Transpose(tok, 1, 2), b*f, dim, gh, gw)
		out = append(out, c.Keep(d.spatial[j].forward(c, grid, d.train)))
		seq := c.Reshape(c.Permute(c.Reshape(tok, b, f, n, dim), 0, 2, 3, 1), b*n, dim, f)
		out = append(out, c.Keep(d.temporal[j].forward(c, seq, d.train)))
		c.Drop(hs, tok, grid, seq)
	}
	return out
}

// keepAll moves ts out of c into its parent.
func keepAll(c *torch.Scope, ts []*torch.Tensor) []*torch.Tensor {
	for _, t := range ts {
		c.Keep(t)
	}
	return ts
}

func (d *Discriminator) checkLatents(x *torch.Tensor) error {
	if err := checkTensor("latents", x, d.backbone.device); err != nil {
		return err
	}
	sh := x.Shape()
	if len(sh) != 5 || sh[0] < 1 || sh[1] < 1 || sh[2] != d.Config.LatentChannels || sh[3] < 1 || sh[4] < 1 {
		return fmt.Errorf("latents: shape %v, want [batch, frames, %d, height, width]", sh, d.Config.LatentChannels)
	}
	return nil
}

func (d *Discriminator) checkPixels(x *torch.Tensor, frames int64) error {
	if err := checkTensor("pixels", x, d.backbone.device); err != nil {
		return err
	}
	ch := d.backbone.Config.NumChannels
	if ch != int64(len(pixelMean)) {
		return fmt.Errorf("pixels: the backbone takes %d channels; the pixel path normalises RGB only", ch)
	}
	sh := x.Shape()
	if len(sh) != 4 || sh[0] < 1 || sh[1] != ch || sh[2] < 1 || sh[3] < 1 {
		return fmt.Errorf("pixels: shape %v, want [batch·frames, %d, height, width]", sh, ch)
	}
	if frames < 1 || sh[0]%frames != 0 {
		return fmt.Errorf("pixels: %d images are not a whole number of videos of %d frames", sh[0], frames)
	}
	return nil
}

func checkTensor(name string, x *torch.Tensor, dev torch.Device) error {
	if x.Released() {
		return fmt.Errorf("%s: nil or released tensor", name)
	}
	if !x.DType().IsFloat() {
		return fmt.Errorf("%s: dtype %s, want a floating-point dtype", name, x.DType())
	}
	if x.Device() != dev {
		return fmt.Errorf("%s: on %s, the discriminator is on %s", name, x.Device(), dev)
	}
	return nil
}
