// Package osv is what programs embed. It will hold the image-to-video
// Pipeline, the stage-1 (latent GAN pretraining) and stage-2 (adversarial
// consistency distillation) trainers, EMA, checkpoints and data, with the
// losses in osv/loss/huber, osv/loss/adversarial and osv/loss/consistency.
//
// Today it holds Release, which frees the native memory of tensors that the
// module's packages return.
package osv
