// Package discriminator will hold OSV's latent discriminator: a frozen
// DINOv2 backbone (transformers layout), a trainable latent upsampler, and
// trainable spatial and temporal heads on tapped layers.
package discriminator
