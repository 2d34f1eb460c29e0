package discriminator

import (
	"fmt"
	"strconv"
)

func itoa[T ~int | ~int64](i T) string { return strconv.FormatInt(int64(i), 10) }

// Config sets the discriminator's trainable parts. A zero field takes its
// default (DefaultConfig); the choices OSV's paper leaves open are ours and
// marked so.
type Config struct {
	// LatentChannels is the channel count of the latents judged (SVD: 4).
	LatentChannels int64 `json:"latent_channels"`
	// UpsampleFactor is the upsampler's pixel-shuffle factor r (default 4):
	// a 3×3 convolution to num_channels·r² channels, then PixelShuffle(r).
	UpsampleFactor int64 `json:"upsample_factor"`
	// Layers are the tapped backbone layers as 0-based indices into
	// encoder.layer: tap k is the output of encoder.layer.k, which is
	// hidden_states[k+1] (transformers' stage k+1). Empty: NumTaps layers
	// evenly spaced and ending at the last, k_j = (j+1)·L/NumTaps − 1, which
	// for L = 12 gives OSV's "layers 2, 5, 8, 11 of 12" ({2, 5, 8, 11}).
	// The heads read these raw hidden states (no final LayerNorm), patch
	// tokens only (the class token is dropped); the backbone runs no
	// further than the last tap.
	Layers []int `json:"layers,omitempty"`
	// NumTaps is the number of evenly spaced taps when Layers is empty
	// (default 4).
	NumTaps int `json:"num_taps"`
	// HeadChannels is the heads' width (default 0: the backbone's hidden
	// size, as StyleGAN-T's heads keep the feature width).
	HeadChannels int64 `json:"head_channels"`
	// Kernel is the size of the heads' residual convolutions: k×k in the
	// spatial heads, k over time in the temporal heads (default 3, odd).
	Kernel int64 `json:"kernel_size"`
	// NormGroups is the heads' GroupNorm group count (our choice of
	// normalisation; default 32), reduced to its greatest common divisor
	// with HeadChannels.
	NormGroups int64 `json:"norm_groups"`
	// NormEps is the GroupNorm epsilon (default 1e-5).
	NormEps float64 `json:"norm_eps"`
	// LeakySlope is the LeakyReLU negative slope (default 0.2).
	LeakySlope float64 `json:"leaky_slope"`
	// PixelInput builds no upsampler: the discriminator then judges decoded
	// pixels only (ApplyPixels), the paper's ablation with the VAE decoder.
	PixelInput bool `json:"pixel_input"`
}

// DefaultConfig is OSV's discriminator (section 6 of the method notes):
// SVD latents, r = 4, four evenly spaced taps, heads as wide as the
// backbone, 3-wide kernels, GroupNorm(32), LeakyReLU(0.2).
func DefaultConfig() Config {
	return Config{
		LatentChannels: 4,
		UpsampleFactor: 4,
		NumTaps:        4,
		Kernel:         3,
		NormGroups:     32,
		NormEps:        1e-5,
		LeakySlope:     0.2,
	}
}

// withDefaults fills the zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.LatentChannels == 0 {
		c.LatentChannels = d.LatentChannels
	}
	if c.UpsampleFactor == 0 {
		c.UpsampleFactor = d.UpsampleFactor
	}
	if c.NumTaps == 0 {
		c.NumTaps = d.NumTaps
	}
	if c.Kernel == 0 {
		c.Kernel = d.Kernel
	}
	if c.NormGroups == 0 {
		c.NormGroups = d.NormGroups
	}
	if c.NormEps == 0 {
		c.NormEps = d.NormEps
	}
	if c.LeakySlope == 0 {
		c.LeakySlope = d.LeakySlope
	}
	return c
}

// resolve fills the defaults and the backbone-dependent fields (Layers,
// HeadChannels, NormGroups) and validates the result against a backbone
// of the given depth and width.
func (c Config) resolve(depth, hidden int64) (Config, error) {
	c = c.withDefaults()
	switch {
	case c.LatentChannels < 0 || c.UpsampleFactor < 0 || c.HeadChannels < 0 || c.NormGroups < 0:
		return c, fmt.Errorf("discriminator config: latent_channels %d, upsample_factor %d, head_channels %d and norm_groups %d must not be negative",
			c.LatentChannels, c.UpsampleFactor, c.HeadChannels, c.NormGroups)
	case c.Kernel < 1 || c.Kernel%2 == 0:
		return c, fmt.Errorf("discriminator config: kernel_size %d must be odd and positive", c.Kernel)
	case c.NormEps < 0:
		return c, fmt.Errorf("discriminator config: norm_eps %g must not be negative", c.NormEps)
	}
	if len(c.Layers) == 0 {
		if c.NumTaps < 1 || int64(c.NumTaps) > depth {
			return c, fmt.Errorf("discriminator config: num_taps %d must be between 1 and the backbone's %d layers", c.NumTaps, depth)
		}
		c.Layers = EvenTaps(int(depth), c.NumTaps)
	} else {
		c.Layers = append([]int(nil), c.Layers...)
		for i, k := range c.Layers {
			if k < 0 || int64(k) >= depth {
				return c, fmt.Errorf("discriminator config: layers[%d] = %d is out of range for a backbone of %d layers (0-based)", i, k, depth)
			}
			if i > 0 && k <= c.Layers[i-1] {
				return c, fmt.Errorf("discriminator config: layers %v must be strictly increasing", c.Layers)
			}
		}
	}
	c.NumTaps = len(c.Layers)
	if c.HeadChannels == 0 {
		c.HeadChannels = hidden
	}
	c.NormGroups = gcd(c.NormGroups, c.HeadChannels)
	return c, nil
}

// EvenTaps are n layer indices (0-based) spread evenly over depth layers
// and ending at the last: (j+1)·depth/n − 1 for j < n. EvenTaps(12, 4) is
// {2, 5, 8, 11}; EvenTaps(24, 4) is {5, 11, 17, 23}.
func EvenTaps(depth, n int) []int {
	out := make([]int, n)
	for j := range out {
		out[j] = (j+1)*depth/n - 1
	}
	return out
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
