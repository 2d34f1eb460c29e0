// Package clip is Stable Video Diffusion's image encoder: transformers'
// CLIPVisionModelWithProjection (parameter names = checkpoint keys) and the
// image preprocessing SVD's pipeline applies before it.
//
// Entry points: Load reads a transformers folder (SVD's image_encoder:
// config.json and model*.safetensors, single or sharded, fp32/fp16/bf16);
// New builds a randomly initialised model from a Config (DefaultConfig is
// SVD's ViT-H/14); Model.ImageEmbeds maps pixel_values to image_embeds (the
// projected class token). LoadPreprocessor reads a feature_extractor's
// preprocessor_config.json (DefaultPreprocessor is SVD's); its Preprocess
// maps images in [0, 1] of any size to pixel_values: ×2−1, an antialiasing
// Gaussian blur, a bicubic resize with aligned corners, back to [0, 1],
// then CLIP's mean/std normalisation (Resize stops before normalising).
// Close releases the weights. Returned tensors belong to the caller
// (osv.Release frees them at once).
//
// For the module's own packages, Model.Apply and Preprocessor.ResizeApply,
// NormalizeApply and Apply do the same on engine tensors inside a scope.
package clip
