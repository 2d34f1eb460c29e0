// Package unet is Stable Video Diffusion's UNetSpatioTemporalConditionModel
// (diffusers layout, parameter names = checkpoint keys) and the EDM
// denoiser around it.
//
// Entry points: Load reads a diffusers folder (config.json and
// diffusion_pytorch_model*.safetensors, single or sharded, fp32/fp16/bf16);
// New builds a randomly initialised model from a Config (DefaultConfig is
// SVD's); Model.Forward runs the UNet; Denoiser applies SVD's EDM
// preconditioning (c_skip, c_out, c_in, c_noise = ¼·ln σ). Close releases
// the weights. Returned tensors belong to the caller (osv.Release frees
// them at once).
//
// The model evaluates with every image_only_indicator entry false, as SVD's
// own forward pass does.
package unet
