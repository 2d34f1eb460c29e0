// Package discriminator is OSV's latent discriminator: a trainable latent
// upsampler, a frozen DINOv2 backbone (transformers' Dinov2Model layout,
// parameter names = checkpoint keys), and trainable spatial and temporal
// heads on evenly spaced backbone layers.
//
// Backbone entry points: LoadBackbone reads a transformers folder
// (config.json and model.safetensors; ViT-S/14, ViT-B/14, ViT-L/14 and
// ViT-g/14 all load through the same code), NewBackbone builds one with
// random weights; Backbone.Forward (gotorch) and Backbone.Apply (engine)
// return every hidden state, the final LayerNorm's output and the pooled
// class token. Position embeddings are interpolated to any patch grid as
// transformers does (bicubic, to the exact grid size, in float32).
//
// Discriminator entry points: New builds the upsampler and heads over a
// loaded backbone from a Config (zero fields take DefaultConfig's values);
// Discriminator.Forward / Apply judge latents [B, F, 4, h, w],
// ForwardPixels / ApplyPixels judge decoded frames (the ablation without
// the upsampler); Trainable lists the parameters to optimise; Save and Load
// keep the trainable parts in a safetensors file; SetTraining switches the
// spectral norms' power-iteration updates. The logits come as one spatial
// map [B·F, 1, h', w'] and one temporal map [B·h'·w', 1, F] per tapped
// layer; the hinge losses of osv/loss/adversarial average them.
//
// Heads follow StyleGAN-T's discriminator heads: spectrally normalised
// convolutions (one power iteration per training forward), GroupNorm,
// LeakyReLU(0.2) and a residual block scaled by 1/√2.
package discriminator
