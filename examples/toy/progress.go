package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"time"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
)

// A stage stopped by its command (an interrupt, or a budget's timeout)
// leaves its progress beside the job's files, and the next command's run
// of the same job continues from it: BASE.safetensors is the trainer's
// whole state (osv.Trainer.Save), BASE.gen.safetensors the clips' noise
// generator, BASE.avg.safetensors the adapters' moving average (when
// stageRun.Average is set), and BASE.json, written last, the steps taken,
// the wall time spent and the clip sampler's state. The files go once the
// job's result is written.

// progress is a stage's BASE.json.
type progress struct {
	Steps int           // steps taken
	Wall  time.Duration // training time spent, over every command
	Clips []byte        // the clip sampler's PCG state
	Done  bool          // the stage finished training (its evaluation may not have)
	// Started is when the stage's first command started training it.
	Started time.Time
	// Watched is the validation's readings so far (stageRun.Watch), and
	// Best the step of the lowest, whose adapters are in stageRun.Best.
	Watched []watchPoint `json:",omitempty"`
	Best    int          `json:",omitempty"`
}

// saveProgress writes a stage's progress under base.
func saveProgress(base string, tr *osv.Trainer, clips *rand.PCG, g *torch.Generator, p progress) error {
	if err := tr.Save(base + ".safetensors"); err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	st, err := g.State(s)
	if err != nil {
		return err
	}
	if err := torch.SaveFile(base+".gen.safetensors", map[string]*torch.Tensor{"state": st}, nil); err != nil {
		return err
	}
	if p.Clips, err = clips.MarshalBinary(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := base + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, base+".json")
}

// loadProgress restores a stage's progress from base into the trainer and
// the two samplers; ok is false when there is none. Files that disagree
// (the trainer's step count is not the progress's) are an error naming
// them.
func loadProgress(base string, tr *osv.Trainer, clips *rand.PCG, g *torch.Generator) (p progress, ok bool, err error) {
	b, err := os.ReadFile(base + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return p, false, nil
	} else if err != nil {
		return p, false, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, false, fmt.Errorf("%s.json: %w", base, err)
	}
	if err := tr.Restore(base + ".safetensors"); err != nil {
		return p, false, err
	}
	if got := tr.Steps(); got != int64(p.Steps) {
		return p, false, fmt.Errorf("%s.safetensors holds step %d, %s.json says %d: remove both to start the stage again", base, got, base, p.Steps)
	}
	s := torch.NewScope()
	defer s.Close()
	ts, err := torch.LoadFile(s, base+".gen.safetensors", torch.CPU)
	if err != nil {
		return p, false, err
	}
	st, found := ts["state"]
	if !found {
		return p, false, fmt.Errorf("%s.gen.safetensors: no tensor \"state\"", base)
	}
	if err := g.SetState(st); err != nil {
		return p, false, fmt.Errorf("%s.gen.safetensors: %w", base, err)
	}
	if err := clips.UnmarshalBinary(p.Clips); err != nil {
		return p, false, fmt.Errorf("%s.json: clip sampler state: %w", base, err)
	}
	return p, true, nil
}

// removeProgress deletes a stage's progress files.
func removeProgress(base string) error {
	var errs []error
	for _, suffix := range []string{".json", ".safetensors", ".gen.safetensors", ".avg.safetensors"} {
		if err := os.Remove(base + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
