package osv

import (
	"context"
	"fmt"
	"image"
	"slices"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/osv/media"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// GenerateOptions are diffusers' StableVideoDiffusionPipeline arguments,
// and the sampler. Zero values take the defaults given.
type GenerateOptions struct {
	// Sampler turns the initial noise into latents: EulerSampler (nil: the
	// teacher's sampling, SVD's own), ConsistencySampler or TTSSampler (a
	// distilled student's), or the caller's own.
	Sampler Sampler

	Width, Height     int     // output size in pixels (1024×576); multiples of 8·2^(UNet blocks−1)
	NumFrames         int     // frames (the UNet config's num_frames)
	NumInferenceSteps int     // steps (the sampler's default: Euler 25, consistency 4, TTS 1)
	MinGuidanceScale  float64 // guidance of the first frame (the sampler's default: 1)
	MaxGuidanceScale  float64 // guidance of the last frame (Euler 3, the students 1); guidance is off when both are ≤ 1
	FPS               int     // frames per second the UNet is conditioned on (7; it sees FPS − 1)
	MotionBucketID    int     // motion conditioning (127)
	// NoiseAugStrength is the noise added to the conditioning image (0.02
	// when nil; a pointer so that 0 can be asked for).
	NoiseAugStrength *float64
	DecodeChunkSize  int    // frames decoded at once by the VAE (all)
	Seed             uint64 // seeds the conditioning noise, then the initial latents

	// Latents, when set, is the initial unit noise [1, F, 4, H/8, W/8]
	// (multiplied by the scheduler's initial σ); CondNoise the unit noise
	// [1, 3, H, W] added to the conditioning image. Both on the pipeline's
	// device; they replace the seeded draws.
	Latents, CondNoise gotorch.Tensor

	// Fit is how an image of another size is brought to Width×Height
	// (media.FitCrop: scale to cover, then centre-crop).
	Fit media.FitMode

	// Progress, when set, is called after each sampler step.
	Progress func(step, total int)

	// onStep, for tests, sees the latents after each step.
	onStep func(step int, latents *torch.Tensor)
}

// resolved fills the defaults from the pipeline's configs.
func (p *Pipeline) resolved(o GenerateOptions) (GenerateOptions, float64) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Sampler == nil {
		o.Sampler = EulerSampler{}
	}
	steps, minG, maxG := o.Sampler.Defaults()
	def(&o.Width, 1024)
	def(&o.Height, 576)
	def(&o.NumFrames, int(p.UNet.Config.NumFrames))
	def(&o.NumInferenceSteps, steps)
	def(&o.FPS, 7)
	def(&o.MotionBucketID, 127)
	def(&o.DecodeChunkSize, o.NumFrames)
	if o.MinGuidanceScale == 0 {
		o.MinGuidanceScale = minG
	}
	if o.MaxGuidanceScale == 0 {
		o.MaxGuidanceScale = maxG
	}
	aug := 0.02
	if o.NoiseAugStrength != nil {
		aug = *o.NoiseAugStrength
	}
	return o, aug
}

// check validates sizes before anything runs.
func (p *Pipeline) check(o GenerateOptions, aug float64) error {
	mult := 8 * (1 << (len(p.UNet.Config.BlockOutChannels) - 1))
	switch {
	case o.Width < 0 || o.Height < 0 || o.Width%mult != 0 || o.Height%mult != 0:
		return fmt.Errorf("osv: size %d×%d: width and height must be positive multiples of %d (the VAE's 8 times the UNet's downsampling)", o.Width, o.Height, mult)
	case o.NumFrames < 1:
		return fmt.Errorf("osv: frames %d: want at least 1", o.NumFrames)
	case o.NumInferenceSteps < 1:
		return fmt.Errorf("osv: steps %d: want at least 1", o.NumInferenceSteps)
	case o.DecodeChunkSize < 1:
		return fmt.Errorf("osv: decode chunk size %d: want at least 1", o.DecodeChunkSize)
	case aug < 0:
		return fmt.Errorf("osv: noise augmentation strength %g: want ≥ 0", aug)
	case o.MinGuidanceScale < 0 || o.MaxGuidanceScale < 0:
		return fmt.Errorf("osv: guidance scales %g, %g: want ≥ 0", o.MinGuidanceScale, o.MaxGuidanceScale)
	}
	return p.checkMemory(o)
}

// Video is a generated clip.
type Video struct {
	Frames []image.Image // the frames, in order
	// Tensor is the clip as [1, F, 3, H, W] float32 in [0, 1] on the
	// pipeline's device, owned by the caller (Release frees it).
	Tensor gotorch.Tensor
}

// Generate turns an image into a video. Cancelling ctx stops between
// denoising steps.
func (p *Pipeline) Generate(ctx context.Context, img image.Image, o GenerateOptions) (v *Video, err error) {
	defer torch.Recover(&err)
	if p == nil {
		return nil, fmt.Errorf("osv: pipeline is closed")
	}
	if img == nil {
		return nil, fmt.Errorf("osv: nil image")
	}
	if err := p.lock(ctx); err != nil {
		return nil, err
	}
	defer p.calls.release()
	if p.UNet == nil || p.UNet.Closed() {
		return nil, fmt.Errorf("osv: pipeline is closed")
	}
	o, aug := p.resolved(o)
	if err := p.check(o, aug); err != nil {
		return nil, err
	}
	s := torch.NewScope()
	defer s.Close()
	fitted := media.Fit(img, o.Width, o.Height, o.Fit)
	data, w, h := media.ToCHW(fitted)
	im, err := torch.FromFloat32(s, data, []int64{1, 3, int64(h), int64(w)}, torch.Float32, p.device)
	if err != nil {
		return nil, fmt.Errorf("osv: image: %w", err)
	}
	frames := p.apply(ctx, s, im, o, aug)
	out, err := frames.Float32s()
	if err != nil {
		return nil, err
	}
	clips, err := media.FramesFromBFCHW(out, 1, o.NumFrames, 3, o.Height, o.Width)
	if err != nil {
		return nil, err
	}
	t, err := torch.ToGotorch(frames)
	if err != nil {
		return nil, err
	}
	return &Video{Frames: clips[0], Tensor: t}, nil
}

// Apply runs the pipeline on engine tensors: image [1, 3, H, W] float32 in
// [0, 1] at the output size → frames [1, F, 3, H, W] float32 in [0, 1],
// owned by s. Like Generate it is serialised with the pipeline's other
// calls. It panics with *torch.Error.
func (p *Pipeline) Apply(ctx context.Context, s *torch.Scope, image *torch.Tensor, o GenerateOptions) *torch.Tensor {
	if err := p.lock(ctx); err != nil {
		panic(&torch.Error{Op: "osv", Err: err})
	}
	defer p.calls.release()
	if p.UNet == nil || p.UNet.Closed() {
		torch.Failf("osv", "pipeline is closed")
	}
	o, aug := p.resolved(o)
	if err := p.check(o, aug); err != nil {
		panic(&torch.Error{Op: "osv", Err: err})
	}
	if sh := image.Shape(); len(sh) != 4 || sh[0] != 1 || sh[1] != 3 || sh[2] != int64(o.Height) || sh[3] != int64(o.Width) {
		torch.Failf("osv", "image: shape %v, want [1, 3, %d, %d]", sh, o.Height, o.Width)
	}
	return p.apply(ctx, s, image, o, aug)
}

// apply is Apply with o resolved and checked.
func (p *Pipeline) apply(ctx context.Context, s *torch.Scope, image *torch.Tensor, o GenerateOptions, aug float64) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	g, err := torch.NewGenerator(o.Seed)
	if err != nil {
		torch.Failf("osv", "%v", err)
	}
	defer g.Close()
	h, w := image.Size(2), image.Size(3)
	f := int64(o.NumFrames)
	lat := p.VAE.Config.LatentChannels

	// Conditioning: CLIP embedding of the image, VAE latent of the noisy image.
	emb := p.EncodeImage(c, image) // [1, 1, D]
	noise := p.input(c, g, o.CondNoise, "cond_noise", []int64{1, 3, h, w})
	z := p.encodeLatent(c, c.Add(c.AddScalar(c.MulScalar(image, 2), -1), c.MulScalar(noise, aug)))
	ids, err := torch.FromFloat32(c, []float32{float32(o.FPS - 1), float32(o.MotionBucketID), float32(aug)}, []int64{1, 3}, torch.Float32, p.device)
	if err != nil {
		torch.Failf("osv", "added_time_ids: %v", err)
	}

	// The initial unit noise, then the sampler.
	noise = p.input(c, g, o.Latents, "latents", []int64{1, f, lat, h / 8, w / 8})
	d := &guidedDenoiser{d: &unet.Denoiser{UNet: p.UNet}, z: z, emb: emb, ids: ids}
	guidance := solver.FrameGuidance(o.MinGuidanceScale, o.MaxGuidanceScale, o.NumFrames)
	if o.MaxGuidanceScale <= 1 && o.MinGuidanceScale <= 1 {
		// diffusers guides only when the largest scale exceeds 1.
		for i := range guidance {
			guidance[i] = 1
		}
	}
	x := o.Sampler.Sample(c, d, noise, SampleRun{
		Steps: o.NumInferenceSteps, Guidance: guidance, Scheduler: p.SchedulerConfig, Generator: g,
		Step: func(i, total int, x *torch.Tensor) error {
			if o.onStep != nil {
				o.onStep(i, x)
			}
			if o.Progress != nil {
				o.Progress(i+1, total)
			}
			return ctx.Err()
		},
	})
	if got, want := x.Shape(), noise.Shape(); !slices.Equal(got, want) {
		torch.Failf("osv", "sampler %T returned latents %v, want %v", o.Sampler, got, want)
	}

	// Decode: unscale, frames into the batch, the temporal decoder chunk by chunk.
	zs := c.MulScalar(c.Reshape(x, f, lat, h/8, w/8), 1/p.VAE.Config.ScalingFactor)
	px := p.VAE.DecodeApply(c, c.Cast(zs, p.VAE.DType()), o.NumFrames, o.DecodeChunkSize)
	px = c.Cast(c.Reshape(px, 1, f, 3, h, w), torch.Float32)
	return c.Keep(c.ClampMax(c.ClampMin(c.AddScalar(c.MulScalar(px, 0.5), 0.5), 0), 1))
}

// EncodeImage is the CLIP image embedding [N, 1, D] of images [N, 3, H, W]
// in [0, 1] (any size: SVD's antialiased resize to the encoder's input).
func (p *Pipeline) EncodeImage(s *torch.Scope, image *torch.Tensor) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	pix := p.FeatureExtractor.Apply(c, image)
	e := p.ImageEncoder.Apply(c, c.Cast(pix, p.ImageEncoder.DType()))
	return c.Keep(c.Reshape(c.Cast(e, torch.Float32), e.Size(0), 1, e.Size(1)))
}

// encodeLatent is the VAE latent (mode, unscaled) of images in [-1, 1].
func (p *Pipeline) encodeLatent(s *torch.Scope, image *torch.Tensor) *torch.Tensor {
	c := s.Child()
	defer c.Close()
	mean, _ := p.VAE.EncodeApply(c, c.Cast(image, p.VAE.DType()))
	return c.Keep(c.Cast(mean, torch.Float32))
}

// input is the caller's tensor when given (checked), a seeded draw otherwise.
func (p *Pipeline) input(s *torch.Scope, g *torch.Generator, given gotorch.Tensor, name string, shape []int64) *torch.Tensor {
	if given.T == nil {
		t, err := g.Randn(s, shape, torch.Float32, p.device)
		if err != nil {
			torch.Failf("osv", "%s: %v", name, err)
		}
		return t
	}
	t, err := torch.FromGotorch(s, given)
	if err != nil {
		torch.Failf("osv", "%s: %v", name, err)
	}
	if got := t.Shape(); !slices.Equal(got, shape) {
		torch.Failf("osv", "%s: shape %v, want %v", name, got, shape)
	}
	if t.Device() != p.device {
		torch.Failf("osv", "%s: on %s, the pipeline is on %s", name, t.Device(), p.device)
	}
	return s.Cast(t, torch.Float32)
}
