package clip

import (
	"fmt"
	"math"

	"github.com/onestepvideo/osv-go/torch"
)

// blurTaps is the antialiasing Gaussian for resizing n pixels to size
// along one axis, as SVD's reference resize computes it: σ = max((n/size −
// 1)/2, 0.001) (scikit-image's choice), int(max(4σ, 3)) taps made odd, the
// taps normalised to sum 1, all in float32.
func blurTaps(n, size int64) []float32 {
	factor := float64(n) / float64(size)
	sigma := math.Max((factor-1)/2, 0.001)
	k := int64(math.Max(2*2*sigma, 3))
	if k%2 == 0 {
		k++
	}
	sig := float32(sigma)
	den := 2 * (sig * sig)
	taps := make([]float32, k)
	var sum float32
	for i := range taps {
		x := float32(int64(i) - k/2)
		taps[i] = float32(math.Exp(float64(-(x * x) / den)))
		sum += taps[i]
	}
	for i := range taps {
		taps[i] /= sum
	}
	return taps
}

// checkImages validates images [N, C, H, W] for the preprocessor.
func (p *Preprocessor) checkImages(x *torch.Tensor, name string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if x.Released() {
		return fmt.Errorf("%s: nil or released tensor", name)
	}
	if !x.DType().IsFloat() {
		return fmt.Errorf("%s: dtype %s, want a floating-point dtype (values in [0, 1])", name, x.DType())
	}
	s := x.Shape()
	if len(s) != 4 || s[0] < 1 || s[1] != int64(len(p.Mean)) || s[2] < 1 || s[3] < 1 {
		return fmt.Errorf("%s: shape %v, want [batch, %d, height, width]", name, s, len(p.Mean))
	}
	return nil
}

// ResizeApply is the first half of the preprocessing on engine tensors:
// images [N, C, H, W] with values in [0, 1] are mapped to [−1, 1], blurred
// with blurTaps along each axis (reflect padding), resized bicubically
// (align_corners) to Height×Width and mapped back to [0, 1]. The result is
// float32, owned by s. It panics with *torch.Error.
func (p *Preprocessor) ResizeApply(s *torch.Scope, images *torch.Tensor) *torch.Tensor {
	if err := p.checkImages(images, "images"); err != nil {
		panic(&torch.Error{Op: "clip", Err: err})
	}
	shape := images.Shape()
	n, ch, h, w := shape[0], shape[1], shape[2], shape[3]
	tx, ty := blurTaps(w, p.Width), blurTaps(h, p.Height)
	for _, a := range []struct {
		what       string
		size, taps int64
	}{{"width", w, int64(len(tx))}, {"height", h, int64(len(ty))}} {
		if pad := a.taps - 1 - (a.taps-1)/2; pad >= a.size {
			torch.Failf("clip", "images: %s %d is too small for the %d-tap antialiasing blur (reflect padding %d needs a larger image)",
				a.what, a.size, a.taps, pad)
		}
	}
	defer torch.Annotate("clip.resize")
	c := s.Child()
	defer c.Close()
	x := c.AddScalar(c.MulScalar(c.Cast(images, torch.Float32), 2), -1)
	x = c.Reshape(x, n*ch, 1, h, w)
	x = blurAxis(c, x, tx, 3)
	x = blurAxis(c, x, ty, 2)
	x = c.Reshape(x, n, ch, h, w)
	x = c.Interpolate(x, torch.Bicubic, p.Height, p.Width, true, false)
	x = c.MulScalar(c.AddScalar(x, 1), 0.5)
	return c.Keep(x)
}

// blurAxis convolves x [M, 1, H, W] with taps along dim (2: height, 3:
// width), reflect-padded so that the size is kept.
func blurAxis(s *torch.Scope, x *torch.Tensor, taps []float32, dim int) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	k := int64(len(taps))
	kshape := []int64{1, 1, 1, k}
	front := (k - 1) / 2
	pads := []int64{front, k - 1 - front, 0, 0}
	if dim == 2 {
		kshape = []int64{1, 1, k, 1}
		pads = []int64{0, 0, front, k - 1 - front}
	}
	kernel, err := torch.FromFloat32(c, taps, kshape, torch.Float32, x.Device())
	if err != nil {
		torch.Failf("blur", "%v", err)
	}
	padded := c.Pad(x, torch.PadReflect, 0, pads...)
	return c.Keep(c.Conv(padded, kernel, nil, []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1))
}

// NormalizeApply is the second half of the preprocessing on engine tensors:
// (x − mean) / std per channel of resized [N, C, h, w] (float32). The
// result, owned by s, is the encoder's pixel_values. It panics with
// *torch.Error.
func (p *Preprocessor) NormalizeApply(s *torch.Scope, resized *torch.Tensor) *torch.Tensor {
	if err := p.checkImages(resized, "resized"); err != nil {
		panic(&torch.Error{Op: "clip", Err: err})
	}
	defer torch.Annotate("clip.normalize")
	c := s.Child()
	defer c.Close()
	ch := int64(len(p.Mean))
	mean, std := make([]float32, ch), make([]float32, ch)
	for i := range ch {
		mean[i], std[i] = float32(p.Mean[i]), float32(p.Std[i])
	}
	m, err := torch.FromFloat32(c, mean, []int64{1, ch, 1, 1}, torch.Float32, resized.Device())
	if err != nil {
		torch.Failf("normalize", "%v", err)
	}
	d, err := torch.FromFloat32(c, std, []int64{1, ch, 1, 1}, torch.Float32, resized.Device())
	if err != nil {
		torch.Failf("normalize", "%v", err)
	}
	return c.Keep(c.Div(c.Sub(c.Cast(resized, torch.Float32), m), d))
}

// Apply is the whole preprocessing on engine tensors: images [N, C, H, W]
// in [0, 1] → pixel_values [N, C, Height, Width], float32, owned by s.
func (p *Preprocessor) Apply(s *torch.Scope, images *torch.Tensor) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	return c.Keep(p.NormalizeApply(c, p.ResizeApply(c, images)))
}
