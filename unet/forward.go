package unet

import (
	"fmt"

	"github.com/wangkuiyi/gotorch"

	"github.com/onestepvideo/osv-go/torch"
)

// Forward runs the UNet: sample [B, F, in_channels, h, w], timestep [B] or
// a scalar (SVD's c_noise = ¼·ln σ), encoderHiddenStates [B, L,
// cross_attention_dim], addedTimeIDs [B, 3]. It returns [B, F,
// out_channels, h, w] in the model's dtype, owned by the caller. Inputs
// must be on the model's device; they are cast to its dtype.
func (m *Model) Forward(sample, timestep, encoderHiddenStates, addedTimeIDs gotorch.Tensor) (out gotorch.Tensor, err error) {
	defer torch.Recover(&err)
	if m.Closed() {
		return gotorch.Tensor{}, errClosed
	}
	s := torch.NewScope()
	defer s.Close()
	in, err := imports(s, map[string]gotorch.Tensor{
		"sample": sample, "timestep": timestep, "encoder_hidden_states": encoderHiddenStates, "added_time_ids": addedTimeIDs,
	})
	if err != nil {
		return gotorch.Tensor{}, fmt.Errorf("unet: %w", err)
	}
	y := m.Apply(s, in["sample"], in["timestep"], in["encoder_hidden_states"], in["added_time_ids"])
	return torch.ToGotorch(y)
}

// imports wraps the caller's tensors, naming any that is missing.
func imports(s *torch.Scope, ts map[string]gotorch.Tensor) (map[string]*torch.Tensor, error) {
	out := make(map[string]*torch.Tensor, len(ts))
	for name, g := range ts {
		t, err := torch.FromGotorch(s, g)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}
