package unet

import (
	"fmt"
	"slices"

	"github.com/onestepvideo/osv-go/internal/nn"
	"github.com/onestepvideo/osv-go/torch"
)

// Model is UNetSpatioTemporalConditionModel. Its methods may be called from
// one goroutine at a time per call; the weights are read-only while it runs.
type Model struct {
	Config Config
	params *torch.Params
	dtype  torch.DType
	device torch.Device

	timeEmbedding *nn.TimestepEmbedding
	addEmbedding  *nn.TimestepEmbedding
	convIn        *nn.Conv
	down          []*downBlock
	mid           *midBlock
	up            []*upBlock
	convNormOut   *nn.GroupNorm
	convOut       *nn.Conv
}

// build lays out the model's layers and registers their parameters under
// diffusers' keys. cfg must be valid.
func build(cfg Config) *Model {
	ps := torch.NewParams()
	m := &Model{Config: cfg, params: ps}
	ch := cfg.BlockOutChannels
	temb := 4 * ch[0]
	m.timeEmbedding = nn.NewTimestepEmbedding(ps, "time_embedding", ch[0], temb, temb)
	m.addEmbedding = nn.NewTimestepEmbedding(ps, "add_embedding", cfg.ProjectionClassEmbeddingsInputDim, temb, temb)
	m.convIn = nn.NewConv2d(ps, "conv_in", cfg.InChannels, ch[0], 3, 1, 1)

	// SVD's residual blocks: learned α starting at 0.5, not switched.
	stRes := func(path string, in, out int64, eps float64) *nn.SpatioTemporalResBlock {
		return nn.NewSpatioTemporalResBlock(ps, path, in, out, temb, nn.SpatioTemporalOptions{Groups: groups, Eps: eps, MergeFactor: 0.5})
	}
	attn := func(path string, i int, channels, layers int64) *transformerSpatioTemporal {
		heads := cfg.NumAttentionHeads.At(i)
		return newTransformerSpatioTemporal(ps, path, heads, channels/heads, channels, layers, cfg.CrossAttentionDim.At(i))
	}

	out := ch[0]
	for i, typ := range cfg.DownBlockTypes {
		in := out
		out = ch[i]
		path := "down_blocks." + itoa(i)
		b := &downBlock{path: path}
		cross := typ == CrossAttnDown
		eps := 1e-5
		if cross {
			eps = 1e-6
		}
		for j := range cfg.LayersPerBlock.At(i) {
			rin := out
			if j == 0 {
				rin = in
			}
			b.resnets = append(b.resnets, stRes(path+".resnets."+itoa(j), rin, out, eps))
			if cross {
				b.attentions = append(b.attentions, attn(path+".attentions."+itoa(j), i, out, cfg.TransformerLayersPerBlock.At(i)))
			}
		}
		if i < len(ch)-1 {
			b.downsampler = nn.NewConv2d(ps, path+".downsamplers.0.conv", out, out, 3, 2, 1)
		}
		m.down = append(m.down, b)
	}

	last := len(ch) - 1
	m.mid = &midBlock{path: "mid_block"}
	m.mid.resnets = append(m.mid.resnets, stRes("mid_block.resnets.0", ch[last], ch[last], 1e-5))
	m.mid.attentions = append(m.mid.attentions, attn("mid_block.attentions.0", last, ch[last], cfg.TransformerLayersPerBlock.At(last)))
	m.mid.resnets = append(m.mid.resnets, stRes("mid_block.resnets.1", ch[last], ch[last], 1e-5))

	rev := slices.Clone(ch)
	slices.Reverse(rev)
	out = rev[0]
	for i, typ := range cfg.UpBlockTypes {
		blk := last - i // the down block this one mirrors: its heads, layers and context
		prev := out
		out = rev[i]
		in := rev[min(i+1, last)]
		path := "up_blocks." + itoa(i)
		b := &upBlock{path: path}
		cross := typ == CrossAttnUp
		layers := cfg.LayersPerBlock.At(blk) + 1
		for j := range layers {
			skip := out
			if j == layers-1 {
				skip = in
			}
			rin := out
			if j == 0 {
				rin = prev
			}
			b.resnets = append(b.resnets, stRes(path+".resnets."+itoa(j), rin+skip, out, 1e-6))
			if cross {
				b.attentions = append(b.attentions, attn(path+".attentions."+itoa(j), blk, out, cfg.TransformerLayersPerBlock.At(blk)))
			}
		}
		if i < last {
			b.upsampler = nn.NewConv2d(ps, path+".upsamplers.0.conv", out, out, 3, 1, 1)
		}
		m.up = append(m.up, b)
	}
	m.convNormOut = nn.NewGroupNorm(ps, "conv_norm_out", groups, ch[0], 1e-5)
	m.convOut = nn.NewConv2d(ps, "conv_out", ch[0], cfg.OutChannels, 3, 1, 1)
	return m
}

// DType is the dtype of the weights and of the computation.
func (m *Model) DType() torch.DType { return m.dtype }

// Device is where the weights live.
func (m *Model) Device() torch.Device { return m.device }

// NumParams is the number of scalar parameters.
func (m *Model) NumParams() int64 { return m.params.Count() }

// Params is the model's parameter set, named by diffusers' state_dict keys
// (for LoRA, training, export, or a custom loader).
func (m *Model) Params() *torch.Params { return m.params }

// Closed reports whether the weights are released (or were never loaded).
func (m *Model) Closed() bool { return m == nil || m.params == nil || m.convIn.Weight.T == nil }

// Close releases the weights. It is safe to call twice.
func (m *Model) Close() error {
	if m != nil && m.params != nil {
		m.params.Free()
	}
	return nil
}

// Apply is the forward pass on engine tensors, for the module's own
// packages: sample [B, F, C_in, h, w], timestep [B] or [] (c_noise),
// context [B, L, D] (image embeddings), timeIDs [B, n]; the result is
// [B, F, C_out, h, w], owned by s. It panics with *torch.Error; inputs
// are cast to the model's dtype.
func (m *Model) Apply(s *torch.Scope, sample, timestep, context, timeIDs *torch.Tensor) *torch.Tensor {
	if m.params == nil || m.convIn.Weight.T == nil {
		torch.Failf("unet", "model is closed or not loaded")
	}
	if err := m.checkInputs(sample, timestep, context, timeIDs); err != nil {
		panic(&torch.Error{Op: "unet", Err: err})
	}
	c := s.Child()
	defer c.Close()
	shape := sample.Shape()
	b, frames := shape[0], shape[1]
	dt := m.dtype

	// Time embedding (the sinusoid in float32, as diffusers computes it).
	t := c.Expand(c.Reshape(c.Cast(timestep, torch.Float32), -1), b)
	emb := m.timeEmbedding.Forward(c, c.Cast(nn.Timesteps(c, t, m.Config.BlockOutChannels[0], true, 0), dt))
	ids := nn.Timesteps(c, c.Reshape(c.Cast(timeIDs, torch.Float32), -1), m.Config.AdditionTimeEmbedDim, true, 0)
	emb = c.Add(emb, m.addEmbedding.Forward(c, c.Cast(c.Reshape(ids, b, -1), dt)))

	// Frames become batch entries.
	x := c.Reshape(c.Cast(sample, dt), append([]int64{b * frames}, shape[2:]...)...)
	emb = c.RepeatInterleave(emb, frames, 0)
	ctx := c.RepeatInterleave(c.Cast(context, dt), frames, 0)

	// Channels-last activations, where the layout mode says so: the
	// convolutions need no layout transposes, and the transformers' token
	// views [B·F, H·W, C] need no copies.
	last := torch.ChannelsLastOn(x.Device())
	if last {
		x = c.ChannelsLast(x)
	}
	x = m.convIn.Forward(c, x)
	skips := []*torch.Tensor{x}
	for _, blk := range m.down {
		var more []*torch.Tensor
		x, more = blk.forward(c, x, emb, ctx, frames)
		skips = append(skips, more...)
	}
	x = m.mid.forward(c, x, emb, ctx, frames)
	for _, blk := range m.up {
		n := len(blk.resnets)
		used := skips[len(skips)-n:]
		skips = skips[:len(skips)-n]
		y := blk.forward(c, x, used, emb, ctx, frames)
		c.Drop(x)
		c.Drop(used...)
		x = y
	}
	a := m.convNormOut.ForwardAct(c, x, nil, true)
	c.Drop(x)
	x = m.convOut.Forward(c, a)
	if last {
		x = c.Contiguous(x)
	}
	return c.Keep(c.Reshape(x, append([]int64{b, frames}, x.Shape()[1:]...)...))
}

// checkInputs validates shapes and dtypes before any kernel runs.
func (m *Model) checkInputs(sample, timestep, context, timeIDs *torch.Tensor) error {
	for name, t := range map[string]*torch.Tensor{"sample": sample, "timestep": timestep, "encoder_hidden_states": context, "added_time_ids": timeIDs} {
		if t.Released() {
			return fmt.Errorf("%s: nil or released tensor", name)
		}
		if !t.DType().IsFloat() {
			return fmt.Errorf("%s: dtype %s, want a floating-point dtype", name, t.DType())
		}
		if t.Device() != m.device {
			return fmt.Errorf("%s: on %s, the model is on %s", name, t.Device(), m.device)
		}
	}
	cfg := m.Config
	s := sample.Shape()
	down := int64(1) << (len(cfg.BlockOutChannels) - 1)
	if len(s) != 5 || s[0] < 1 || s[1] < 1 || s[2] != cfg.InChannels || s[3] < 1 || s[4] < 1 {
		return fmt.Errorf("sample: shape %v, want [batch, frames, %d, height, width]", s, cfg.InChannels)
	}
	if s[3]%down != 0 || s[4]%down != 0 {
		return fmt.Errorf("sample: latent size %d×%d must be divisible by %d (the UNet downsamples %d times)", s[3], s[4], down, len(cfg.BlockOutChannels)-1)
	}
	b := s[0]
	if ts := timestep.Shape(); !(len(ts) == 0 || (len(ts) == 1 && (ts[0] == b || ts[0] == 1))) {
		return fmt.Errorf("timestep: shape %v, want [] or [%d]", ts, b)
	}
	if cs := context.Shape(); len(cs) != 3 || cs[0] != b || cs[2] != cfg.CrossAttentionDim.At(0) {
		return fmt.Errorf("encoder_hidden_states: shape %v, want [%d, tokens, %d]", cs, b, cfg.CrossAttentionDim.At(0))
	}
	if is := timeIDs.Shape(); len(is) != 2 || is[0] != b || is[1] != cfg.NumTimeIDs() {
		return fmt.Errorf("added_time_ids: shape %v, want [%d, %d]", is, b, cfg.NumTimeIDs())
	}
	return nil
}
