package discriminator

import (
	"fmt"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// Backbone is transformers' Dinov2Model: patch embedding, class token and
// position embeddings (interpolated to the input's patch grid), a stack of
// pre-norm transformer layers with layer scale, and a final LayerNorm.
// Parameter names are the checkpoint's keys. Its weights never require
// gradients, but gradients flow through it to its input.
type Backbone struct {
	Config BackboneConfig
	params *torch.Params
	dtype  torch.DType
	device torch.Device

	cls       *torch.Param // embeddings.cls_token [1, 1, D]
	mask      *torch.Param // embeddings.mask_token [1, D], loaded and unused
	positions *torch.Param // embeddings.position_embeddings [1, 1 + grid², D]
	patch     *nn.Conv     // embeddings.patch_embeddings.projection
	layers    []*layer     // encoder.layer.i
	norm      *nn.LayerNorm
}

// States are the backbone's outputs on engine tensors, as Dinov2Model
// returns them with output_hidden_states: HiddenStates[0] is the embedding
// output and HiddenStates[i] the output of layer i (1-based, so the last is
// the final layer's output before the LayerNorm), each [N, 1 + h'·w', D];
// LastHiddenState is the LayerNorm of the last; PoolerOutput [N, D] is its
// class token.
type States struct {
	HiddenStates    []*torch.Tensor
	LastHiddenState *torch.Tensor
	PoolerOutput    *torch.Tensor
}

// buildBackbone lays out the layers under the checkpoint's keys; cfg must
// be valid.
func buildBackbone(cfg BackboneConfig) *Backbone {
	ps := torch.NewParams()
	d := cfg.HiddenSize
	g := cfg.GridSize()
	b := &Backbone{Config: cfg, params: ps}
	b.cls = ps.Add("embeddings.cls_token", []int64{1, 1, d}, torch.Init{Kind: torch.InitZeros})
	if cfg.UseMaskToken {
		b.mask = ps.Add("embeddings.mask_token", []int64{1, d}, torch.Init{Kind: torch.InitZeros})
	}
	b.positions = ps.Add("embeddings.position_embeddings", []int64{1, g*g + 1, d}, torch.Init{Kind: torch.InitZeros})
	p := cfg.PatchSize
	b.patch = nn.NewConv(ps, "embeddings.patch_embeddings.projection", cfg.NumChannels, d, []int64{p, p},
		nn.ConvOptions{Stride: []int64{p}})
	for i := range cfg.NumHiddenLayers {
		b.layers = append(b.layers, newLayer(ps, "encoder.layer."+itoa(i), cfg))
	}
	b.norm = nn.NewLayerNorm(ps, "layernorm", d, cfg.LayerNormEps)
	return b
}

// DType is the dtype of the weights and of the computation.
func (b *Backbone) DType() torch.DType { return b.dtype }

// Device is where the weights live.
func (b *Backbone) Device() torch.Device { return b.device }

// NumParams is the number of scalar parameters.
func (b *Backbone) NumParams() int64 { return b.params.Count() }

// Params lists the weights (frozen: none requires gradients).
func (b *Backbone) Params() *torch.Params { return b.params }

// Close releases the weights. It is safe to call twice.
func (b *Backbone) Close() error {
	if b != nil && b.params != nil {
		b.params.Free()
	}
	return nil
}

func (b *Backbone) loaded() bool { return b != nil && b.params != nil && b.cls.T != nil }

// Apply runs the whole model on pixels [N, num_channels, H, W] (cast to the
// backbone's dtype; H and W at least patch_size, any remainder of
// patch_size ignored as the strided patch convolution does). The states are
// owned by s. It panics with *torch.Error.
func (b *Backbone) Apply(s *torch.Scope, pixels *torch.Tensor) *States {
	hidden := b.run(s, pixels, len(b.layers), nil)
	c := s.Child()
	defer c.Close()
	last := b.norm.Forward(c, hidden[len(hidden)-1])
	pooled := c.Select(last, 1, 0)
	return &States{HiddenStates: hidden, LastHiddenState: c.Keep(last), PoolerOutput: c.Keep(pooled)}
}

// run embeds pixels and applies the first depth layers. It returns, owned
// by s, the hidden states that keep selects (by index: 0 the embeddings, i
// the output of layer i), all of them when keep is nil; the others are
// nil.
func (b *Backbone) run(s *torch.Scope, pixels *torch.Tensor, depth int, keep func(i int) bool) []*torch.Tensor {
	if !b.loaded() {
		torch.Failf("dinov2", "backbone is closed or not loaded")
	}
	if err := b.checkPixels(pixels); err != nil {
		panic(&torch.Error{Op: "dinov2", Err: err})
	}
	c := s.Child()
	defer c.Close()
	out := make([]*torch.Tensor, depth+1)
	x := b.embed(c, pixels)
	for i := 0; ; i++ {
		if keep == nil || keep(i) {
			out[i] = c.Keep(x)
		}
		if i == depth {
			break
		}
		y := b.layers[i].forward(c, x)
		c.Drop(x)
		x = y
	}
	return out
}

func (b *Backbone) checkPixels(x *torch.Tensor) error {
	if x.Released() {
		return fmt.Errorf("pixel_values: nil or released tensor")
	}
	if !x.DType().IsFloat() {
		return fmt.Errorf("pixel_values: dtype %s, want a floating-point dtype", x.DType())
	}
	if x.Device() != b.device {
		return fmt.Errorf("pixel_values: on %s, the backbone is on %s", x.Device(), b.device)
	}
	cfg := b.Config
	sh := x.Shape()
	if len(sh) != 4 || sh[0] < 1 || sh[1] != cfg.NumChannels {
		return fmt.Errorf("pixel_values: shape %v, want [batch, %d, height, width]", sh, cfg.NumChannels)
	}
	if sh[2] < cfg.PatchSize || sh[3] < cfg.PatchSize {
		return fmt.Errorf("pixel_values: image %d×%d is smaller than one %d×%d patch", sh[2], sh[3], cfg.PatchSize, cfg.PatchSize)
	}
	return nil
}

// embed is Dinov2Embeddings: the patch tokens, the class token in front,
// plus the position embeddings at the input's grid. The result is [N, 1 +
// h'·w', D] with tokens in row-major grid order.
func (b *Backbone) embed(s *torch.Scope, pixels *torch.Tensor) *torch.Tensor {
	defer torch.Annotate("embeddings")
	c := s.Child()
	defer c.Close()
	n := pixels.Size(0)
	d := b.Config.HiddenSize
	p := b.patch.Forward(c, c.Cast(pixels, b.dtype)) // [N, D, h', w']
	h, w := p.Size(2), p.Size(3)
	tokens := c.Transpose(c.Reshape(p, n, d, h*w), 1, 2)
	x := c.Cat(1, c.Expand(b.cls.T, n, 1, d), tokens)
	c.Drop(p, tokens)
	return c.Keep(c.Add(x, b.positionEmbeddings(c, h, w)))
}

// positionEmbeddings are the learned embeddings [1, 1 + h·w, D] for an h×w
// patch grid. Off the trained grid, the patch part is resized as
// transformers' interpolate_pos_encoding does: to exactly h×w, bicubic,
// align_corners false, no antialiasing, computed in float32 and cast back.
// On the trained grid the bicubic resize is the identity, so the stored
// embeddings are used as they are.
func (b *Backbone) positionEmbeddings(s *torch.Scope, h, w int64) *torch.Tensor {
	g := b.Config.GridSize()
	pos := b.positions.T
	if h == g && w == g {
		return pos
	}
	c := s.Child()
	defer c.Close()
	d := b.Config.HiddenSize
	cls := c.Slice(pos, 1, 0, 1)
	grid := c.Permute(c.Reshape(c.Slice(pos, 1, 1, 1+g*g), 1, g, g, d), 0, 3, 1, 2)
	grid = c.Interpolate(c.Cast(grid, torch.Float32), torch.Bicubic, h, w, false, false)
	grid = c.Reshape(c.Permute(c.Cast(grid, pos.DType()), 0, 2, 3, 1), 1, h*w, d)
	return c.Keep(c.Cat(1, cls, grid))
}
