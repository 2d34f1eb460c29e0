package vae

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// Log-variance bounds of diffusers' DiagonalGaussianDistribution.
const (
	logvarMin = -30
	logvarMax = 20
)

// Encode maps images x [N, in_channels, H, W] in [−1, 1] (H and W
// divisible by Config.Downscale) to the mean and the log-variance
// (clamped to [−30, 20]) of the latent distribution, each [N,
// latent_channels, H/d, W/d] in the model's dtype and owned by the caller.
// The mean is the distribution's mode. Latents are not multiplied by the
// scaling factor. x must be on the model's device; it is cast to its dtype.
func (m *Model) Encode(x gotorch.Tensor) (mean, logvar gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if m.closed() {
		return gotorch.Tensor{}, gotorch.Tensor{}, errClosed
	}
	s := torch.NewScope()
	defer s.Close()
	in, err := torch.FromGotorch(s, x)
	if err != nil {
		return gotorch.Tensor{}, gotorch.Tensor{}, fmt.Errorf("vae: x: %w", err)
	}
	mu, lv := m.EncodeApply(s, in)
	if mean, err = torch.ToGotorch(mu); err != nil {
		return gotorch.Tensor{}, gotorch.Tensor{}, err
	}
	if logvar, err = torch.ToGotorch(lv); err != nil {
		torch.Release(mean)
		return gotorch.Tensor{}, gotorch.Tensor{}, err
	}
	return mean, logvar, nil
}

// Decode maps unscaled latents z [N, latent_channels, h, w], N clips of
// numFrames consecutive frames, to images [N, out_channels, h·d, w·d] in
// the model's dtype, owned by the caller. At most chunkSize frames are
// decoded at once, as the pipeline's decode_chunk_size (see DecodeApply).
// z must be on the model's device; it is cast to its dtype.
func (m *Model) Decode(z gotorch.Tensor, numFrames, chunkSize int) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if m.closed() {
		return gotorch.Tensor{}, errClosed
	}
	s := torch.NewScope()
	defer s.Close()
	in, err := torch.FromGotorch(s, z)
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("vae: z: %w", err)
	}
	return torch.ToGotorch(m.DecodeApply(s, in, numFrames, chunkSize))
}

// EncodeApply is Encode on engine tensors, for the module's own packages:
// the mean and the clamped log-variance, owned by s. It panics with
// *torch.Error.
func (m *Model) EncodeApply(s *torch.Scope, x *torch.Tensor) (mean, logvar *torch.Tensor) {
	if m.closed() {
		torch.Failf("vae", "model is closed or not loaded")
	}
	if err := m.checkImages(x); err != nil {
		panic(&torch.Error{Op: "vae", Err: err})
	}
	c := s.Child()
	defer c.Close()
	h := m.encoder.forward(c, c.Cast(x, m.dtype))
	moments := m.quantConv.Forward(c, h)
	c.Drop(h)
	parts := c.Chunk(moments, 2, 1)
	mean = c.Contiguous(parts[0])
	logvar = c.ClampMax(c.ClampMin(parts[1], logvarMin), logvarMax)
	return c.Keep(mean), c.Keep(logvar)
}

// DecodeApply is Decode on engine tensors, for the module's own packages;
// the result is owned by s. It panics with *torch.Error.
//
// The temporal decoder mixes neighbouring frames, so the chunking changes
// the result: each chunk is decoded as a clip of its own length, as
// diffusers' decode_latents does. With chunkSize ≥ numFrames whole clips
// are decoded together (⌊chunkSize/numFrames⌋ at a time, the same result
// as one call); with a smaller chunkSize every clip is cut into runs of
// chunkSize frames (the last one shorter). For one clip this is exactly
// decode_latents; for several, decode_latents cuts the frames of all clips
// laid end to end, so that when chunkSize does not divide numFrames its
// chunks straddle two clips and mix their frames, which these never do.
func (m *Model) DecodeApply(s *torch.Scope, z *torch.Tensor, numFrames, chunkSize int) *torch.Tensor {
	if m.closed() {
		torch.Failf("vae", "model is closed or not loaded")
	}
	if err := m.checkLatents(z, numFrames, chunkSize); err != nil {
		panic(&torch.Error{Op: "vae", Err: err})
	}
	c := s.Child()
	defer c.Close()
	z = c.Cast(z, m.dtype)
	n, f, k := z.Size(0), int64(numFrames), int64(chunkSize)
	var parts []*torch.Tensor
	if k >= f {
		step := k / f * f
		for i := int64(0); i < n; i += step {
			parts = append(parts, m.decoder.forward(c, c.Slice(z, 0, i, min(i+step, n)), f))
		}
	} else {
		for clip := int64(0); clip < n; clip += f {
			for j := int64(0); j < f; j += k {
				e := min(j+k, f)
				parts = append(parts, m.decoder.forward(c, c.Slice(z, 0, clip+j, clip+e), e-j))
			}
		}
	}
	if len(parts) == 1 {
		return c.Keep(parts[0])
	}
	out := c.Cat(0, parts...)
	c.Drop(parts...)
	return c.Keep(out)
}

// checkTensor validates what every input needs: present, floating point,
// on the model's device.
func (m *Model) checkTensor(name string, t *torch.Tensor) error {
	if t.Released() {
		return fmt.Errorf("%s: nil or released tensor", name)
	}
	if !t.DType().IsFloat() {
		return fmt.Errorf("%s: dtype %s, want a floating-point dtype", name, t.DType())
	}
	if t.Device() != m.device {
		return fmt.Errorf("%s: on %s, the model is on %s", name, t.Device(), m.device)
	}
	return nil
}

// checkImages validates Encode's input before any kernel runs.
func (m *Model) checkImages(x *torch.Tensor) error {
	if err := m.checkTensor("x", x); err != nil {
		return err
	}
	cfg := m.Config
	s := x.Shape()
	if len(s) != 4 || s[0] < 1 || s[1] != cfg.InChannels || s[2] < 1 || s[3] < 1 {
		return fmt.Errorf("x: shape %v, want [N, %d, height, width]", s, cfg.InChannels)
	}
	if d := cfg.Downscale(); s[2]%d != 0 || s[3]%d != 0 {
		return fmt.Errorf("x: image size %d×%d must be divisible by %d (the encoder downsamples %d times)",
			s[2], s[3], d, len(cfg.BlockOutChannels)-1)
	}
	return nil
}

// checkLatents validates Decode's inputs before any kernel runs.
func (m *Model) checkLatents(z *torch.Tensor, numFrames, chunkSize int) error {
	if err := m.checkTensor("z", z); err != nil {
		return err
	}
	cfg := m.Config
	s := z.Shape()
	if len(s) != 4 || s[0] < 1 || s[1] != cfg.LatentChannels || s[2] < 1 || s[3] < 1 {
		return fmt.Errorf("z: shape %v, want [N, %d, height, width]", s, cfg.LatentChannels)
	}
	if numFrames < 1 {
		return fmt.Errorf("numFrames %d must be at least 1", numFrames)
	}
	if s[0]%int64(numFrames) != 0 {
		return fmt.Errorf("z: %d frames is not a multiple of numFrames %d", s[0], numFrames)
	}
	if chunkSize < 1 {
		return fmt.Errorf("chunk size %d must be at least 1", chunkSize)
	}
	return nil
}
