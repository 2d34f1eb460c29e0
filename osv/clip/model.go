package clip

import (
	"fmt"
	"strconv"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// Model is transformers' CLIPVisionModelWithProjection. Its methods may be
// called from one goroutine at a time per call; the weights are read-only
// while it runs.
type Model struct {
	Config Config
	params *torch.Params
	dtype  torch.DType
	device torch.Device

	patchEmbedding    *nn.Conv
	classEmbedding    *torch.Param
	positionEmbedding *torch.Param
	preLayerNorm      *nn.LayerNorm // pre_layrnorm, as transformers spells it
	layers            []*encoderLayer
	postLayerNorm     *nn.LayerNorm
	visualProjection  *nn.Linear
}

// build lays out the model's layers and registers their parameters under
// transformers' keys. cfg must be valid.
func build(cfg Config) *Model {
	ps := torch.NewParams()
	m := &Model{Config: cfg, params: ps}
	d := cfg.HiddenSize
	const emb = "vision_model.embeddings"
	m.patchEmbedding = nn.NewConv(ps, emb+".patch_embedding", cfg.NumChannels, d, []int64{cfg.PatchSize, cfg.PatchSize},
		nn.ConvOptions{Stride: []int64{cfg.PatchSize}, NoBias: true})
	m.classEmbedding = ps.Add(emb+".class_embedding", []int64{d}, torch.Init{Kind: torch.InitUniform, FanIn: d})
	m.positionEmbedding = ps.Add(emb+".position_embedding.weight", []int64{cfg.NumPositions(), d}, torch.Init{Kind: torch.InitUniform, FanIn: d})
	m.preLayerNorm = nn.NewLayerNorm(ps, "vision_model.pre_layrnorm", d, cfg.LayerNormEps)
	for i := range cfg.NumHiddenLayers {
		m.layers = append(m.layers, newEncoderLayer(ps, "vision_model.encoder.layers."+strconv.FormatInt(i, 10), cfg))
	}
	m.postLayerNorm = nn.NewLayerNorm(ps, "vision_model.post_layernorm", d, cfg.LayerNormEps)
	m.visualProjection = nn.NewLinear(ps, "visual_projection", d, cfg.ProjectionDim, false)
	return m
}

// DType is the dtype of the weights and of the computation.
func (m *Model) DType() torch.DType { return m.dtype }

// Device is where the weights live.
func (m *Model) Device() torch.Device { return m.device }

// NumParams is the number of scalar parameters.
func (m *Model) NumParams() int64 { return m.params.Count() }

// Params lists the model's parameters (for the module's own packages).
func (m *Model) Params() *torch.Params { return m.params }

// Close releases the weights. It is safe to call twice.
func (m *Model) Close() error {
	if m != nil && m.params != nil {
		m.params.Free()
	}
	return nil
}

// Apply is the forward pass on engine tensors, for the module's own
// packages: pixelValues [N, num_channels, image_size, image_size]
// (normalised, cast to the model's dtype) → image_embeds [N,
// projection_dim], the projection of the post-layernormed class token of
// the last hidden state, owned by s. It panics with *torch.Error.
func (m *Model) Apply(s *torch.Scope, pixelValues *torch.Tensor) *torch.Tensor {
	if m.params == nil || m.patchEmbedding.Weight.T == nil {
		torch.Failf("clip", "model is closed or not loaded")
	}
	if err := m.checkInput(pixelValues); err != nil {
		panic(&torch.Error{Op: "clip", Err: err})
	}
	defer torch.Annotate("vision_model")
	c := s.Child()
	defer c.Close()
	h := m.embed(c, c.Cast(pixelValues, m.dtype))
	for _, l := range m.layers {
		next := l.forward(c, h)
		c.Drop(h)
		h = next
	}
	pooled := m.postLayerNorm.Forward(c, c.Select(h, 1, 0))
	return c.Keep(m.visualProjection.Forward(c, pooled))
}

// embed maps pixels [N, C, S, S] to the pre-layernormed tokens [N, 1 +
// patches, D]: the class embedding, then the patches in row-major order,
// each plus its position embedding.
func (m *Model) embed(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	defer torch.Annotate("vision_model.embeddings")
	c := s.Child()
	defer c.Close()
	n, d := x.Size(0), m.Config.HiddenSize
	p := m.patchEmbedding.Forward(c, x)
	p = c.Transpose(c.Reshape(p, n, d, -1), 1, 2)
	cls := c.Expand(c.Reshape(m.classEmbedding.T, 1, 1, d), n, 1, d)
	tokens := c.Add(c.Cat(1, cls, p), m.positionEmbedding.T)
	return c.Keep(m.preLayerNorm.Forward(c, tokens))
}

// checkInput validates pixel_values before any kernel runs.
func (m *Model) checkInput(x *torch.Tensor) error {
	if x.Released() {
		return fmt.Errorf("pixel_values: nil or released tensor")
	}
	if !x.DType().IsFloat() {
		return fmt.Errorf("pixel_values: dtype %s, want a floating-point dtype", x.DType())
	}
	if x.Device() != m.device {
		return fmt.Errorf("pixel_values: on %s, the model is on %s", x.Device(), m.device)
	}
	cfg := m.Config
	if s := x.Shape(); len(s) != 4 || s[0] < 1 || s[1] != cfg.NumChannels || s[2] != cfg.ImageSize || s[3] != cfg.ImageSize {
		return fmt.Errorf("pixel_values: shape %v, want [batch, %d, %d, %d] (the encoder's image_size)", s, cfg.NumChannels, cfg.ImageSize, cfg.ImageSize)
	}
	return nil
}
