// Package nn holds the layers the models are built from, with parameters
// registered under the reference implementations' state_dict keys
// (diffusers, transformers, peft): Linear, Conv (1/2/3-d), GroupNorm,
// LayerNorm, Attention (scaled dot-product), FeedForward (GEGLU), the
// sinusoidal Timesteps embedding and TimestepEmbedding.
//
// A model registers its parameters in a Params set while it is built; the
// set then loads a checkpoint strictly (missing, unexpected and mis-shaped
// keys are listed in the error) or initialises the parameters at random.
// Forward methods panic with *torch.Error (see package torch).
package nn
