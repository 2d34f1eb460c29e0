package osv

import (
	"fmt"

	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
)

// denoiserGraphs replays one frozen branch's denoiser (the teacher's or
// θ⁻'s) from CUDA graphs: each kind of call (both branches, or one) and
// each set of input shapes is recorded on first use and replayed after,
// with the call's inputs (x, σ and the conditioning) copied into the
// graph's own tensors first. The branch's weights are read where they
// live, so θ⁻'s in-place EMA updates reach later replays.
type denoiserGraphs struct {
	branch func(Cond) solver.PairDenoiser
	dev    torch.Device
	cache  map[string]*denoiseGraph
}

// denoiseGraph is one recorded call: its inputs and outputs.
type denoiseGraph struct {
	in       *torch.Scope
	x, sigma *torch.Tensor
	cond     Cond
	out      []*torch.Tensor
	graph    *torch.Graph
}

func newDenoiserGraphs(branch func(Cond) solver.PairDenoiser, dev torch.Device) *denoiserGraphs {
	return &denoiserGraphs{branch: branch, dev: dev, cache: map[string]*denoiseGraph{}}
}

// bind is the branch's denoiser for the conditioning c, replaying graphs.
func (gs *denoiserGraphs) bind(c Cond) solver.PairDenoiser { return graphedDenoiser{gs: gs, c: c} }

// close releases every graph; it is safe on nil.
func (gs *denoiserGraphs) close() {
	if gs == nil {
		return
	}
	for k, g := range gs.cache {
		g.graph.Close()
		g.in.Close()
		delete(gs.cache, k)
	}
}

type graphedDenoiser struct {
	gs *denoiserGraphs
	c  Cond
}

func (d graphedDenoiser) Denoise(s *torch.Scope, x, sigma *torch.Tensor, cond bool) *torch.Tensor {
	kind := "uncond"
	if cond {
		kind = "cond"
	}
	return d.gs.run(s, kind, d.c, x, sigma)[0]
}

func (d graphedDenoiser) DenoisePair(s *torch.Scope, x, sigma *torch.Tensor) (uncond, cond *torch.Tensor) {
	out := d.gs.run(s, "pair", d.c, x, sigma)
	return out[0], out[1]
}

// run replays (recording first, if new) the call kind on x, σ and c, and
// returns copies of its outputs owned by s. It panics with *torch.Error.
func (gs *denoiserGraphs) run(s *torch.Scope, kind string, c Cond, x, sigma *torch.Tensor) []*torch.Tensor {
	key := fmt.Sprint(kind, x.Shape(), x.DType(), sigma.Shape(), sigma.DType(),
		c.ImageLatents.Shape(), c.ImageEmbeds.Shape(), c.AddedTimeIDs.Shape())
	g, ok := gs.cache[key]
	if !ok {
		var err error
		if g, err = gs.record(kind, c, x, sigma); err != nil {
			torch.Failf("denoiser graph", "%s call on x %v: %v", kind, x.Shape(), err)
		}
		gs.cache[key] = g
	} else {
		for _, p := range [][2]*torch.Tensor{{g.x, x}, {g.sigma, sigma}, {g.cond.ImageLatents, c.ImageLatents},
			{g.cond.ImageEmbeds, c.ImageEmbeds}, {g.cond.AddedTimeIDs, c.AddedTimeIDs}} {
			if err := torch.CopyInto(p[0], p[1]); err != nil {
				torch.Failf("denoiser graph", "%v", err)
			}
		}
	}
	if err := g.graph.Replay(); err != nil {
		torch.Failf("denoiser graph", "%v", err)
	}
	out := make([]*torch.Tensor, len(g.out))
	for i, o := range g.out {
		out[i] = s.Clone(o)
	}
	return out
}

// record copies the inputs into tensors of a new graph and records the
// call over them.
func (gs *denoiserGraphs) record(kind string, c Cond, x, sigma *torch.Tensor) (g *denoiseGraph, err error) {
	defer torch.Recover(&err)
	in := torch.NewScope()
	g = &denoiseGraph{in: in, x: in.Clone(x), sigma: in.Clone(sigma),
		cond: Cond{ImageLatents: in.Clone(c.ImageLatents), ImageEmbeds: in.Clone(c.ImageEmbeds), AddedTimeIDs: in.Clone(c.AddedTimeIDs)}}
	d := gs.branch(g.cond)
	g.graph, err = torch.CaptureGraph(gs.dev, 1, func(s *torch.Scope) error {
		switch kind {
		case "pair":
			u, k := d.DenoisePair(s, g.x, g.sigma)
			g.out = []*torch.Tensor{u, k}
		default:
			g.out = []*torch.Tensor{d.Denoise(s, g.x, g.sigma, kind == "cond")}
		}
		return nil
	})
	if err != nil {
		in.Close()
		return nil, err
	}
	return g, nil
}
