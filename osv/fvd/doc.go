// Package fvd computes the Fréchet Video Distance (FVD) as the field
// computes it: StyleGAN-V's I3D TorchScript detector (i3d_torchscript.pt,
// the file users already have) called as its FVD code calls it, the
// reference preprocessing, and the Fréchet distance of the two feature
// sets with the reference's statistics.
//
// Entry points: LoadDetector (WithDevice, WithBatchSize) reads the
// detector through libtorch's TorchScript loader; Detector.Features runs
// it on clips held as tensors (frames [T, 3, H, W] in [0, 1], such as a
// Pipeline's output), Detector.ClipFeatures on clips decoded by osv/data,
// Detector.FileFeatures on video files (decoded at their own size by
// data.DecodeFrames: the first T frames, at a stated rate or the video's
// own, or T frames evenly spaced; unreadable and short videos are skipped
// and counted); Preprocess is the reference preprocessing of one clip;
// Distance (DistanceOn for a device) is the Fréchet distance of two
// feature sets; SaveFeatures and LoadFeatures keep a set's features in a
// safetensors file, so that a second evaluation against another set
// reuses them.
//
// A clip from a Pipeline:
//
//	v, err := pipe.Generate(ctx, img, osv.GenerateOptions{})
//	t, err := torch.FromGotorch(s, v.Tensor) // [1, F, 3, H, W] in [0, 1]
//	fake, err := det.Features([]*torch.Tensor{t})
//	score, err := fvd.Distance(fake, real)
package fvd
