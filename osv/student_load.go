package osv

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/unet"
)

// loadUNet loads the pipeline's UNet from its unet/ folder (base), or the
// replacement that WithUNet names: a diffusers folder, checked against the
// base config, or a bare state_dict laid out by the base config.
func loadUNet(base string, o options) (*unet.Model, error) {
	mopts := []unet.Option{unet.WithDevice(o.device), unet.WithDType(o.dtype)}
	if o.unet == "" {
		return unet.Load(base, mopts...)
	}
	st, err := os.Stat(o.unet)
	if err != nil {
		return nil, fmt.Errorf("osv: UNet: %w", err)
	}
	cfg, err := unet.ReadConfig(base)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return unet.LoadStateDict(cfg, o.unet, mopts...)
	}
	repl, err := unet.ReadConfig(o.unet)
	if err != nil {
		return nil, err
	}
	if err := compatibleUNet(cfg, repl); err != nil {
		return nil, fmt.Errorf("osv: %s: %w (the pipeline's is %s)", filepath.Join(o.unet, "config.json"), err, filepath.Join(base, "config.json"))
	}
	return unet.Load(o.unet, mopts...)
}

// compatibleUNet checks that a replacement UNet takes the pipeline's
// inputs: the VAE's latents (with the image latents beside them), the
// image encoder's embeddings and the added time ids.
func compatibleUNet(base, repl unet.Config) error {
	for _, f := range []struct {
		key        string
		base, repl int64
	}{
		{"in_channels", base.InChannels, repl.InChannels},
		{"out_channels", base.OutChannels, repl.OutChannels},
		{"addition_time_embed_dim", base.AdditionTimeEmbedDim, repl.AdditionTimeEmbedDim},
		{"projection_class_embeddings_input_dim", base.ProjectionClassEmbeddingsInputDim, repl.ProjectionClassEmbeddingsInputDim},
	} {
		if f.base != f.repl {
			return fmt.Errorf("%s %d, the pipeline's UNet has %d", f.key, f.repl, f.base)
		}
	}
	// The context is the image encoder's embedding, which the base's mid
	// block always attends to: every block of the replacement must take
	// the same width.
	want := base.CrossAttentionDim.At(len(base.BlockOutChannels) - 1)
	for i := range repl.BlockOutChannels {
		if d := repl.CrossAttentionDim.At(i); d != want {
			return fmt.Errorf("cross_attention_dim %d in block %d, the pipeline's UNet has %d", d, i, want)
		}
	}
	return nil
}

// attachLoRA loads a peft folder onto u, merged into its weights when
// merge is set. On error nothing stays attached or allocated.
func attachLoRA(u *unet.Model, dir string, merge bool) (*lora.Set, error) {
	if err := nn.CheckFolder("lora", dir); err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	set, err := lora.Load(u, dir)
	if err != nil {
		return nil, err
	}
	if merge {
		if err := set.Merge(); err != nil {
			set.Close()
			return nil, fmt.Errorf("osv: %s: %w", dir, err)
		}
	}
	return set, nil
}
