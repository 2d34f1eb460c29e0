package discriminator

import (
	"errors"
	"fmt"

	"github.com/onestepvideo/osv-go/torch"
)

// Discriminator is OSV's latent discriminator: a trainable upsampler from
// latents to pixels, the frozen DINOv2 backbone, and one spatial and one
// temporal head per tapped layer. The upsampler and the heads are float32
// on the backbone's device; the backbone keeps its own dtype and the
// features are cast at the boundary.
//
// A Discriminator is used from one goroutine at a time: a training forward
// updates the spectral norms' power-iteration vectors.
type Discriminator struct {
	Config   Config // resolved: Layers, HeadChannels and NormGroups filled
	backbone *Backbone
	state    *torch.Params // trainable parameters and the spectral norms' u vectors
	buffers  map[string]bool
	train    bool

	up       *upsampler // nil with PixelInput
	spatial  []*head    // spatial.j, for the j-th tapped layer
	temporal []*head    // temporal.j
}

var errClosed = errors.New("discriminator: closed")

// build lays out the trainable parts; cfg must be resolved.
func build(b *Backbone, cfg Config) *Discriminator {
	ps := torch.NewParams()
	d := &Discriminator{Config: cfg, backbone: b, state: ps, buffers: map[string]bool{}, train: true}
	bc := b.Config
	if !cfg.PixelInput {
		d.up = newUpsampler(ps, cfg.LatentChannels, bc.NumChannels, cfg.UpsampleFactor, bc.PatchSize)
	}
	for j := range cfg.Layers {
		d.spatial = append(d.spatial, newHead(ps, "spatial."+itoa(j), bc.HiddenSize, 2, cfg))
		d.temporal = append(d.temporal, newHead(ps, "temporal."+itoa(j), bc.HiddenSize, 1, cfg))
	}
	for _, sn := range d.snConvs() {
		d.buffers[sn.u.Name] = true
	}
	return d
}

func (d *Discriminator) snConvs() []*snConv {
	var out []*snConv
	for j := range d.spatial {
		out = append(out, d.spatial[j].snConvs()...)
		out = append(out, d.temporal[j].snConvs()...)
	}
	return out
}

// New builds a discriminator over a loaded backbone with randomly
// initialised upsampler and heads (PyTorch's default initialisation of
// each layer, power-iteration vectors drawn from a normal distribution and
// refined by 15 iterations), all drawn from seed. The backbone's weights
// are set not to require gradients; the trainable parameters are.
func New(b *Backbone, cfg Config, seed uint64) (d *Discriminator, err error) {
	defer torch.Recover(&err)
	if !b.loaded() {
		return nil, errors.New("discriminator: the backbone is closed or not loaded")
	}
	rc, err := cfg.resolve(b.Config.NumHiddenLayers, b.Config.HiddenSize)
	if err != nil {
		return nil, err
	}
	if err := freeze(b); err != nil {
		return nil, err
	}
	d = build(b, rc)
	g, err := torch.NewGenerator(seed)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	if err := d.state.InitRandom(g, torch.Float32, b.device); err != nil {
		d.state.Free()
		return nil, fmt.Errorf("discriminator: %w", err)
	}
	if err := d.initPowerIteration(g); err != nil {
		d.state.Free()
		return nil, err
	}
	if err := d.markTrainable(); err != nil {
		d.state.Free()
		return nil, err
	}
	return d, nil
}

// freeze makes sure no backbone weight requires gradients.
func freeze(b *Backbone) error {
	for _, p := range b.params.List() {
		if p.T.RequiresGrad() {
			if err := p.T.SetRequiresGrad(false); err != nil {
				return fmt.Errorf("discriminator: freeze %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

func (d *Discriminator) initPowerIteration(g *torch.Generator) (err error) {
	defer torch.Recover(&err)
	for _, sn := range d.snConvs() {
		s := torch.NewScope()
		u, err := g.Randn(s, sn.u.Shape, torch.Float32, torch.CPU)
		if err != nil {
			s.Close()
			return fmt.Errorf("discriminator: init %s: %w", sn.u.Name, err)
		}
		t, err := normalize(s, u).To(nil, torch.Float32, d.backbone.device)
		s.Close()
		if err != nil {
			return fmt.Errorf("discriminator: init %s: %w", sn.u.Name, err)
		}
		sn.u.T.Free()
		sn.u.T = t
		sn.warmUp(15)
	}
	return nil
}

// markTrainable sets requires-grad on every trainable parameter.
func (d *Discriminator) markTrainable() error {
	for _, p := range d.Trainable() {
		if err := p.T.SetRequiresGrad(true); err != nil {
			return fmt.Errorf("discriminator: %s: %w", p.Name, err)
		}
	}
	return nil
}

// Trainable lists the upsampler's and the heads' parameters (each
// requires gradients), in a fixed order; never a backbone weight, nor the
// spectral norms' u vectors.
func (d *Discriminator) Trainable() []*torch.Param {
	if d == nil || d.state == nil {
		return nil
	}
	var out []*torch.Param
	for _, p := range d.state.List() {
		if !d.buffers[p.Name] {
			out = append(out, p)
		}
	}
	return out
}

// Backbone is the frozen backbone the discriminator reads (not owned: Close
// leaves it alone).
func (d *Discriminator) Backbone() *Backbone { return d.backbone }

// SetTraining chooses whether forward passes update the spectral norms'
// power-iteration vectors (true after New and Load, as a module in
// training mode).
func (d *Discriminator) SetTraining(on bool) { d.train = on }

// Training reports whether forward passes update the power iteration.
func (d *Discriminator) Training() bool { return d.train }

// NumParams is the number of trainable scalars.
func (d *Discriminator) NumParams() int64 {
	var n int64
	for _, p := range d.Trainable() {
		m := int64(1)
		for _, k := range p.Shape {
			m *= k
		}
		n += m
	}
	return n
}

// Close releases the upsampler and the heads (not the backbone). It is
// safe to call twice.
func (d *Discriminator) Close() error {
	if d != nil && d.state != nil {
		d.state.Free()
	}
	return nil
}

func (d *Discriminator) loaded() bool {
	return d != nil && d.state != nil && len(d.state.List()) > 0 && d.state.List()[0].T != nil
}

// State lists everything Save writes: the trainable parameters and the
// spectral norms' u vectors (for checkpoints that restore in place).
func (d *Discriminator) State() []*torch.Param { return d.state.List() }
