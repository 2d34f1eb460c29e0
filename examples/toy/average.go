package main

import (
	"fmt"
	"slices"

	"github.com/onestepvideo/osv-go/osv"
	"github.com/onestepvideo/osv-go/torch"
)

// adapterAverage is a moving average of a student's adapters, kept beside
// the training (stageRun.Average): one tensor per trainable tensor, in
// Student.Trainable's order, under the same checkpoint keys.
type adapterAverage struct {
	student *osv.Student
	params  []*torch.Tensor // the student's trainable tensors, which the training updates in place
	decay   float64
	s       *torch.Scope
	avg     []*torch.Tensor
}

// newAdapterAverage starts the average at the student's adapters as they
// are now.
func newAdapterAverage(st *osv.Student, decay float64) (a *adapterAverage, err error) {
	defer torch.Recover(&err)
	a = &adapterAverage{student: st, params: st.Trainable(), decay: decay, s: torch.NewScope()}
	for _, p := range a.params {
		a.avg = append(a.avg, a.s.Clone(a.s.Detach(p)))
	}
	return a, nil
}

// update moves the average toward the adapters: avg ← d·avg + (1 − d)·θ.
func (a *adapterAverage) update() error {
	return torch.EMA(a.avg, a.params, a.decay)
}

// save writes the average to path, keyed by the adapters' names.
func (a *adapterAverage) save(path string) error {
	ts := map[string]*torch.Tensor{}
	for i, name := range a.student.Names() {
		ts[name] = a.avg[i]
	}
	return torch.SaveFile(path, ts, nil)
}

// load replaces the average with the one save wrote to path; a missing
// key or a shape that is not the adapter's is an error naming both.
func (a *adapterAverage) load(path string) error {
	s := torch.NewScope()
	defer s.Close()
	ts, err := torch.LoadFile(s, path, torch.CPU)
	if err != nil {
		return fmt.Errorf("the adapters' average: %w", err)
	}
	for i, name := range a.student.Names() {
		t, ok := ts[name]
		if !ok {
			return fmt.Errorf("%s: no tensor %q (the adapters' average)", path, name)
		}
		if !slices.Equal(t.Shape(), a.avg[i].Shape()) {
			return fmt.Errorf("%s: %q has shape %v, the adapter %v", path, name, t.Shape(), a.avg[i].Shape())
		}
		if err := torch.CopyInto(a.avg[i], t); err != nil {
			return fmt.Errorf("%s: %q: %w", path, name, err)
		}
	}
	return nil
}

// saveAdapters writes the average as a peft adapter folder (the layout
// of LoRA.Save, for toy demo -lora and loadStudent): the student's
// adapters take the average's values for the save and get their own back
// after it.
func (a *adapterAverage) saveAdapters(dir string) (err error) {
	defer torch.Recover(&err)
	ps := a.params
	s := torch.NewScope()
	defer s.Close()
	kept := make([]*torch.Tensor, len(ps))
	for i, p := range ps {
		kept[i] = s.Clone(s.Detach(p))
	}
	defer func() {
		for i, p := range ps {
			if e := torch.CopyInto(p, kept[i]); e != nil && err == nil {
				err = fmt.Errorf("restoring the adapters after saving their average: %w", e)
			}
		}
	}()
	for i, p := range ps {
		if err := torch.CopyInto(p, a.avg[i]); err != nil {
			return fmt.Errorf("the adapters' average: %w", err)
		}
	}
	if err := a.student.LoRA.Save(dir); err != nil {
		return fmt.Errorf("saving the adapters' average: %w", err)
	}
	return nil
}

func (a *adapterAverage) close() { a.s.Close() }
