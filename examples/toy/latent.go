package main

import (
	"fmt"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
)

// The toy's latent space has no VAE: a frame of S×S RGB pixels is
// centred and scaled to unit spread, (p − pixelMean)/pixelStd, and
// rearranged losslessly (a pixel unshuffle by r) into 3·r² channels of
// (S/r)×(S/r); a latent goes back to pixels with a pixel shuffle and the
// inverse affine map. The latents then have mean 0 and deviation 1 over the
// world, the data scale SVD's preconditioning assumes (σ_d = 1).
const (
	factor        = 4
	pixelMean     = -0.93 // the world's mean pixel value (TestLatentScale)
	pixelStd      = 0.36  // and its deviation
	embedDim      = 32    // width of the (all-zero) image embedding
	noiseAug      = 0.02  // noise augmentation of the conditioning frame
	conditionFPS  = 6     // added time ids: fps − 1, motion bucket, augmentation
	motionBucket  = 127
	latentChannel = 3 * factor * factor
)

// toLatents maps pixels [N, 3, S, S] to latents [N, 3·r², S/r, S/r].
func toLatents(s *torch.Scope, px *torch.Tensor) *torch.Tensor {
	n, c, h, w := px.Size(0), px.Size(1), px.Size(2), px.Size(3)
	x := s.MulScalar(s.AddScalar(px, -pixelMean), 1/pixelStd)
	x = s.Reshape(x, n, c, h/factor, factor, w/factor, factor)
	x = s.Permute(x, 0, 1, 3, 5, 2, 4)
	return s.Reshape(x, n, c*factor*factor, h/factor, w/factor)
}

// toPixels maps latents [B, F, 3·r², h, w] to frames [B·F, 3, r·h, r·w].
func toPixels(s *torch.Scope, z *torch.Tensor) *torch.Tensor {
	sh := z.Shape()
	px := s.PixelShuffle(s.Reshape(z, sh[0]*sh[1], sh[2], sh[3], sh[4]), factor)
	return s.AddScalar(s.MulScalar(px, pixelStd), pixelMean)
}

// clipsTensor stacks clips' pixels into [B, F, 3, S, S] on dev.
func clipsTensor(s *torch.Scope, wc world.Config, clips []world.Clip, dev torch.Device) (*torch.Tensor, error) {
	per := wc.Frames * 3 * wc.Size * wc.Size
	data := make([]float32, 0, len(clips)*per)
	for i, c := range clips {
		if len(c.Pixels) != per {
			return nil, fmt.Errorf("clip %d has %d values, want %d", i, len(c.Pixels), per)
		}
		data = append(data, c.Pixels...)
	}
	return torch.FromFloat32(s, data, []int64{int64(len(clips)), int64(wc.Frames), 3, int64(wc.Size), int64(wc.Size)}, torch.Float32, dev)
}

// batchOf makes a training or sampling batch from clips: the clips'
// latents, the noise-augmented first frame's latent as the image
// conditioning, a zero image embedding and SVD's usual time ids.
func batchOf(s *torch.Scope, wc world.Config, clips []world.Clip, g *torch.Generator, dev torch.Device) (osv.Batch, error) {
	px, err := clipsTensor(s, wc, clips, dev)
	if err != nil {
		return osv.Batch{}, err
	}
	return batchOfPixels(s, px, g, dev)
}

// batchOfPixels is batchOf from the clips' pixels [B, F, 3, S, S] on dev.
func batchOfPixels(s *torch.Scope, px *torch.Tensor, g *torch.Generator, dev torch.Device) (osv.Batch, error) {
	b, f := px.Size(0), px.Size(1)
	z := s.Reshape(toLatents(s, s.Reshape(px, b*f, 3, px.Size(3), px.Size(4))), b, f, latentChannel, px.Size(3)/factor, px.Size(4)/factor)
	first := s.Reshape(s.Slice(z, 1, 0, 1), b, latentChannel, z.Size(3), z.Size(4))
	n, err := g.Randn(s, first.Shape(), torch.Float32, dev)
	if err != nil {
		return osv.Batch{}, err
	}
	ids := make([]float32, 0, 3*b)
	for range b {
		ids = append(ids, conditionFPS, motionBucket, noiseAug)
	}
	idT, err := torch.FromFloat32(s, ids, []int64{b, 3}, torch.Float32, dev)
	if err != nil {
		return osv.Batch{}, err
	}
	return osv.Batch{
		Latents:      z,
		ImageLatents: s.Add(first, s.MulScalar(n, noiseAug)),
		ImageEmbeds:  s.Filled(z, 0, b, 1, embedDim),
		AddedTimeIDs: idT,
	}, nil
}

// framesOf turns latents [B, F, C, h, w] into each clip's pixels
// (F×3×S×S, clamped to [−1, 1]) on the CPU.
func framesOf(s *torch.Scope, z *torch.Tensor) ([][]float32, error) {
	b := z.Size(0)
	px := s.ClampMax(s.ClampMin(toPixels(s, s.Cast(z, torch.Float32)), -1), 1)
	all, err := px.Float32s()
	if err != nil {
		return nil, err
	}
	per := len(all) / int(b)
	out := make([][]float32, b)
	for i := range out {
		out[i] = all[i*per : (i+1)*per]
	}
	return out, nil
}
