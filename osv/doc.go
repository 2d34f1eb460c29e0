// Package osv is what programs embed: Stable Video Diffusion's
// image-to-video Pipeline (LoadPipeline, NewPipeline, Generate) and Release
// for the tensors the module's packages return. Its subpackages hold the
// VAE (vae), the CLIP image encoder (clip), image and video files (media)
// and OSV's losses (loss/huber, loss/adversarial, loss/consistency). The
// stage-1 and stage-2 trainers, EMA, checkpoints and data will join them.
package osv
