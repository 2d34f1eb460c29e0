package osv

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// checkpointKey is the safetensors metadata entry with the trainer's
// counters and config.
const checkpointKey = "osv_trainer"

type checkpointMeta struct {
	Step      int64       `json:"step"`
	StepsG    int64       `json:"steps_g"`
	StepsD    int64       `json:"steps_d"`
	NonFinite int         `json:"nonfinite"`
	Config    TrainConfig `json:"config"`
}

// state is every tensor a checkpoint holds, by key.
func (t *Trainer) state() map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	add := func(prefix string, ps []*torch.Param) {
		for _, p := range ps {
			out[prefix+p.Name] = p.T
		}
	}
	add("lora.", t.Student.LoRA.Trainable())
	ema := t.EMA.Weights()
	for i, name := range t.Student.Names() {
		out["ema."+name] = ema[i]
	}
	add("disc.", t.Disc.State())
	for k, v := range t.optG.State() {
		out["opt_g."+k] = v
	}
	for k, v := range t.optD.State() {
		out["opt_d."+k] = v
	}
	return out
}

// Save writes the whole training state to one safetensors file (written
// to a temporary name, then renamed): the LoRA adapters, their EMA, the
// discriminator, both optimisers, the noise generator, the step and the
// config.
func (t *Trainer) Save(path string) (err error) {
	defer torch.Recover(&err)
	if t.closed() {
		return fmt.Errorf("osv: trainer is closed")
	}
	s := torch.NewScope()
	defer s.Close()
	ts := t.state()
	rng, err := t.gen.State(s)
	if err != nil {
		return err
	}
	ts["rng"] = rng
	meta, err := json.Marshal(checkpointMeta{Step: t.step, StepsG: t.optG.Steps(), StepsD: t.optD.Steps(), NonFinite: t.nonFinite, Config: t.Config})
	if err != nil {
		return err
	}
	if err := torch.SaveFile(path, ts, map[string]string{"format": "pt", checkpointKey: string(meta)}); err != nil {
		return fmt.Errorf("osv: checkpoint: %w", err)
	}
	return nil
}

// Restore loads a checkpoint written by Save into this trainer, which must
// have been made with the same models and LoRA settings. A stage-1
// checkpoint may start stage 2: then θ⁻ starts equal to the restored θ. Every key must be
// present with its shape; on error the trainer may be partly restored and
// should not be used.
func (t *Trainer) Restore(path string) (err error) {
	defer torch.Recover(&err)
	if t.closed() {
		return fmt.Errorf("osv: trainer is closed")
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return fmt.Errorf("osv: checkpoint: %w", err)
	}
	defer f.Close()
	raw, ok := f.Header.Metadata[checkpointKey]
	if !ok {
		return fmt.Errorf("osv: checkpoint %s: no %q metadata (not a trainer checkpoint)", path, checkpointKey)
	}
	var meta checkpointMeta
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return fmt.Errorf("osv: checkpoint %s: %w", path, err)
	}
	if meta.Config.Stage != t.Config.Stage && !(meta.Config.Stage == 1 && t.Config.Stage == 2) {
		return fmt.Errorf("osv: checkpoint %s is from stage %d; this trainer runs stage %d", path, meta.Config.Stage, t.Config.Stage)
	}
	if meta.Config.LoRARank != t.Config.LoRARank {
		return fmt.Errorf("osv: checkpoint %s has LoRA rank %d; this trainer has %d", path, meta.Config.LoRARank, t.Config.LoRARank)
	}
	s := torch.NewScope()
	defer s.Close()
	read := func(key string, want []int64, dev torch.Device) *torch.Tensor {
		info, ok := f.Info(key)
		if !ok {
			torch.Failf("checkpoint", "%s: no tensor %q", path, key)
		}
		if want != nil && !slices.Equal(info.Shape, want) {
			torch.Failf("checkpoint", "%s: %q has shape %v, want %v", path, key, info.Shape, want)
		}
		x, err := torch.ReadTensor(s, f, key, 0, dev)
		must(err)
		return x
	}
	// A stage-1 checkpoint starting stage 2 brings the student and the
	// discriminator; the target starts as the student itself (θ⁻ = θ, as
	// consistency distillation begins: stage 1's EMA lags θ), and the
	// optimisers and counters start anew.
	fresh := meta.Config.Stage != t.Config.Stage
	for key, dst := range t.state() {
		if fresh && (strings.HasPrefix(key, "opt_") || strings.HasPrefix(key, "ema.")) {
			continue
		}
		must(torch.CopyInto(dst, read(key, dst.Shape(), dst.Device())))
	}
	if fresh {
		return t.EMA.CopyFrom(t.Student)
	}
	opt := func(o *torch.AdamW, prefix string, steps int64) {
		st := map[string]*torch.Tensor{}
		for k := range o.State() {
			st[k] = read(prefix+k, nil, t.device())
		}
		must(o.Restore(st, steps))
	}
	opt(t.optG, "opt_g.", meta.StepsG)
	opt(t.optD, "opt_d.", meta.StepsD)
	// The noise generator is a CPU generator: its state stays on the CPU.
	must(t.gen.SetState(read("rng", nil, torch.CPU)))
	t.step, t.nonFinite = meta.Step, meta.NonFinite
	return nil
}
