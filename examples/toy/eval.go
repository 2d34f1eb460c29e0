package main

import (
	"time"

	"github.com/onestepvideo/osv-go/examples/toy/world"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// evalSet is the held-out evaluation: clips of the world the models never
// saw, generated from their first frames with fixed noise, compared with
// the clips' true continuations (world.Features for the Fréchet distance,
// world.MeasureMotion for the motion statistics).
type evalSet struct {
	wc     world.Config
	clips  []world.Clip
	real   [][]float64    // features of the true clips
	motion []world.Motion // motion of the true clips
	batch  int
	seed   uint64
}

func newEvalSet(wc world.Config, clips []world.Clip, batch int, seed uint64) *evalSet {
	e := &evalSet{wc: wc, clips: clips, batch: batch, seed: seed}
	for _, c := range clips {
		e.real = append(e.real, wc.Features(c.Pixels))
		e.motion = append(e.motion, wc.MeasureMotion(c.Pixels))
	}
	return e
}

// row is one line of the results table.
type row struct {
	Name       string
	NFE        int
	FD         float64             // Fréchet distance to the true clips' features (standardised)
	FDTerms    []float64           `json:",omitempty"` // each feature's own Fréchet term in FD's units (world.FeatureTerms), in world.FeatureNames' order
	Motion     world.MotionSummary // of the generated clips
	SpeedW1    float64             // W1 between per-clip speeds, generated against true
	Background float64             // mean level of the pixels away from every object, in [0, 1] (world.Background)
	MSPerClip  float64             // generation time per clip, batched
	Sample     [][]float32         `json:"-"` // the first generated clips (pixels), for pictures
}

// scoreClips scores generated pixels against the set.
func (e *evalSet) scoreClips(name string, nfe int, gen [][]float32) (row, error) {
	r := row{Name: name, NFE: nfe}
	var feats [][]float64
	var ms []world.Motion
	for _, px := range gen {
		feats = append(feats, e.wc.Features(px))
		ms = append(ms, e.wc.MeasureMotion(px))
		r.Background += e.wc.Background(px) / float64(len(gen))
	}
	std, err := world.Standardize(e.real, e.real, feats)
	if err != nil {
		return r, err
	}
	fd, err := world.Frechet(std[0], std[1])
	if err != nil {
		return r, err
	}
	r.FD = fd
	if r.FDTerms, err = world.FeatureTerms(std[0], std[1]); err != nil {
		return r, err
	}
	r.Motion = world.Summarize(ms)
	r.SpeedW1 = world.Wasserstein1(speeds(e.motion), speeds(ms))
	return r, nil
}

func speeds(ms []world.Motion) []float64 {
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = m.Speed
	}
	return out
}

// run generates every held-out clip with sm on u (fixed noise per batch)
// and scores the result.
func (e *evalSet) run(name string, u *unet.Model, sm sampler) (row, error) {
	var gen [][]float32
	var elapsed time.Duration
	for i := 0; i < len(e.clips); i += e.batch {
		part := e.clips[i:min(i+e.batch, len(e.clips))]
		px, d, err := e.generate(u, sm, part, e.seed+uint64(i))
		if err != nil {
			return row{}, err
		}
		elapsed += d
		gen = append(gen, px...)
	}
	r, err := e.scoreClips(name, sm.nfe, gen)
	if err != nil {
		return r, err
	}
	r.MSPerClip = float64(elapsed.Microseconds()) / 1000 / float64(len(e.clips))
	r.Sample = gen[:min(len(gen), 4)]
	return r, nil
}

func (e *evalSet) generate(u *unet.Model, sm sampler, clips []world.Clip, seed uint64) (px [][]float32, d time.Duration, err error) {
	defer torch.Recover(&err)
	g, err := torch.NewGenerator(seed)
	if err != nil {
		return nil, 0, err
	}
	defer g.Close()
	s := torch.NewScope()
	defer s.Close()
	dev := u.Device()
	b, err := batchOf(s, e.wc, clips, g, dev)
	if err != nil {
		return nil, 0, err
	}
	noise, err := g.Randn(s, b.Latents.Shape(), torch.Float32, dev)
	if err != nil {
		return nil, 0, err
	}
	if dev.CUDA {
		if err := torch.Synchronize(dev); err != nil {
			return nil, 0, err
		}
	}
	t0 := time.Now()
	out := sm.run(s, u, b, noise, g)
	if dev.CUDA {
		if err := torch.Synchronize(dev); err != nil {
			return nil, 0, err
		}
	}
	d = time.Since(t0)
	px, err = framesOf(s, out)
	return px, d, err
}
