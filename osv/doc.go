// Package osv is what programs embed: Stable Video Diffusion's
// image-to-video Pipeline (LoadPipeline, NewPipeline, Generate), OSV's
// Trainer for stage 1 (latent GAN pretraining) and stage 2 (adversarial
// consistency distillation) with its TrainConfig and checkpoints, and
// Release for the tensors the module's packages return. Its subpackages
// hold the VAE (vae), the CLIP image encoder (clip), image and video files
// (media) and OSV's losses (loss/huber, loss/adversarial,
// loss/consistency).
package osv
