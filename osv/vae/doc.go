// Package vae is Stable Video Diffusion's VAE, diffusers'
// AutoencoderKLTemporalDecoder (parameter names = checkpoint keys): a 2-d
// KL encoder of single images and a decoder whose residual blocks and
// output convolution also mix neighbouring frames.
//
// Entry points: Load reads a diffusers folder (config.json and
// diffusion_pytorch_model*.safetensors, single or sharded, fp32/fp16/bf16);
// New builds a randomly initialised model from a Config (DefaultConfig is
// SVD's); Model.Encode maps images in [−1, 1] to the latent distribution's
// mean (its mode) and log-variance; Model.Decode maps latents back to
// images, clip by clip, a chunk of frames at a time. Close releases the
// weights. Returned tensors belong to the caller (osv.Release frees them
// at once).
//
// Latents are unscaled: callers multiply by Config.ScalingFactor after
// encoding and divide by it before decoding, as the SVD pipeline does.
package vae
