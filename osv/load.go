package osv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onestepvideo/osv-go/lora"
	"github.com/onestepvideo/osv-go/osv/clip"
	"github.com/onestepvideo/osv-go/osv/vae"
	"github.com/onestepvideo/osv-go/solver"
	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// Pipeline is Stable Video Diffusion's image-to-video pipeline: the UNet
// (with its EDM denoiser), the temporal VAE, the CLIP image encoder with
// SVD's preprocessing, and the Euler scheduler's configuration. Generate
// may be called from several goroutines: calls run one at a time, each with
// the result it would have alone.
type Pipeline struct {
	UNet             *unet.Model
	VAE              *vae.Model
	ImageEncoder     *clip.Model
	FeatureExtractor *clip.Preprocessor
	SchedulerConfig  solver.SchedulerConfig
	// LoRA is the adapter set WithLoRA attached to UNet (merged into its
	// weights unless WithLoRAUnmerged), or nil. Close releases it.
	LoRA *lora.Set

	device torch.Device
	dtype  torch.DType
	calls  serial // Generate, Apply and Close, one at a time
}

// Option configures LoadPipeline.
type Option func(*options) error

type options struct {
	device       string
	dtype        string
	unet         string // WithUNet's file or folder
	lora         string // WithLoRA's folder
	loraUnmerged bool
}

// WithDevice places the models on "cpu" (default), "cuda" or "cuda:N".
func WithDevice(device string) Option {
	return func(o *options) error { o.device = device; return nil }
}

// WithDType runs the models in "fp32" (default), "fp16" or "bf16". In fp16
// the VAE runs in fp32 when its config asks for it (force_upcast), as in
// diffusers.
func WithDType(dtype string) Option {
	return func(o *options) error { o.dtype = dtype; return nil }
}

// WithUNet replaces the pipeline's UNet, for a distilled student: path is
// either a diffusers UNet folder (config.json and its safetensors weights,
// as unet.Load reads it; its config must take the inputs of the pipeline's
// own unet/config.json: channels, cross-attention width, added time ids)
// or a single safetensors file holding a full state_dict with diffusers'
// keys, laid out by the pipeline's own unet/config.json
// (unet.LoadStateDict). The pipeline's own UNet weights are not read.
func WithUNet(path string) Option {
	return func(o *options) error {
		if path == "" {
			return fmt.Errorf("osv: WithUNet: empty path")
		}
		o.unet = path
		return nil
	}
}

// WithLoRA attaches a peft LoRA folder (adapter_config.json and
// adapter_model.safetensors, as lora.Set.Save and Trainer.Export write it)
// to the pipeline's UNet (the replacement one when WithUNet is given too).
// The adapters are merged into the weights, so that generation runs at the
// base model's cost, unless WithLoRAUnmerged is given. Pipeline.LoRA holds
// the set.
func WithLoRA(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("osv: WithLoRA: empty folder")
		}
		o.lora = dir
		return nil
	}
}

// WithLoRAUnmerged keeps WithLoRA's adapters beside the base weights
// instead of merging them (to switch them off, train them further or
// change their scale).
func WithLoRAUnmerged() Option {
	return func(o *options) error { o.loraUnmerged = true; return nil }
}

// modelIndex is the part of model_index.json the loader checks.
type modelIndex struct {
	ClassName string `json:"_class_name"`
}

// components are the folders of an SVD pipeline, in loading order.
var components = []string{"unet", "vae", "image_encoder", "feature_extractor", "scheduler"}

// LoadPipeline reads a Hugging Face SVD folder (model_index.json, unet/,
// vae/, image_encoder/, feature_extractor/, scheduler/). Nothing is
// downloaded.
func LoadPipeline(dir string, opts ...Option) (p *Pipeline, err error) {
	o := options{device: "cpu", dtype: "fp32"}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	dev, err := torch.ParseDevice(o.device)
	if err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	dt, err := torch.ParseDType(o.dtype)
	if err != nil || !dt.IsFloat() {
		return nil, fmt.Errorf("osv: dtype %q: want fp32, fp16 or bf16", o.dtype)
	}
	index := filepath.Join(dir, "model_index.json")
	b, err := os.ReadFile(index)
	if err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	var mi modelIndex
	if err := json.Unmarshal(b, &mi); err != nil {
		return nil, fmt.Errorf("osv: %s: %w", index, err)
	}
	if mi.ClassName != "StableVideoDiffusionPipeline" {
		return nil, fmt.Errorf("osv: %s: _class_name %q, want StableVideoDiffusionPipeline", index, mi.ClassName)
	}
	for _, c := range components {
		if st, err := os.Stat(filepath.Join(dir, c)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("osv: %s: the pipeline folder has no %s/ component", dir, c)
		}
	}

	p = &Pipeline{device: dev, dtype: dt}
	// The error returns set p to nil before this runs: close what was built.
	built := p
	defer func() {
		if err != nil {
			built.Close()
			p = nil
		}
	}()
	if p.UNet, err = loadUNet(filepath.Join(dir, "unet"), o); err != nil {
		return nil, err
	}
	if o.lora != "" {
		if p.LoRA, err = attachLoRA(p.UNet, o.lora, !o.loraUnmerged); err != nil {
			return nil, err
		}
	}
	vaeCfg, err := vae.ReadConfig(filepath.Join(dir, "vae"))
	if err != nil {
		return nil, err
	}
	vaeDType := o.dtype
	if dt == torch.Float16 && vaeCfg.ForceUpcast {
		vaeDType = "fp32"
	}
	if p.VAE, err = vae.Load(filepath.Join(dir, "vae"), vae.WithDevice(o.device), vae.WithDType(vaeDType)); err != nil {
		return nil, err
	}
	if p.ImageEncoder, err = clip.Load(filepath.Join(dir, "image_encoder"), clip.WithDevice(o.device), clip.WithDType(o.dtype)); err != nil {
		return nil, err
	}
	if p.FeatureExtractor, err = clip.LoadPreprocessor(filepath.Join(dir, "feature_extractor", "preprocessor_config.json")); err != nil {
		return nil, err
	}
	if p.SchedulerConfig, err = solver.LoadSchedulerConfig(filepath.Join(dir, "scheduler", "scheduler_config.json")); err != nil {
		return nil, err
	}
	return p, nil
}

// Device is where the models live.
func (p *Pipeline) Device() torch.Device { return p.device }

// Close releases every model's weights. It is safe to call twice.
func (p *Pipeline) Close() error {
	if p == nil {
		return nil
	}
	p.calls.acquire(context.Background())
	defer p.calls.release()
	var errs []error
	if p.LoRA != nil {
		errs = append(errs, p.LoRA.Close())
		p.LoRA = nil
	}
	if p.UNet != nil {
		errs = append(errs, p.UNet.Close())
	}
	if p.VAE != nil {
		errs = append(errs, p.VAE.Close())
	}
	if p.ImageEncoder != nil {
		errs = append(errs, p.ImageEncoder.Close())
	}
	return errors.Join(errs...)
}

// NewPipeline assembles a pipeline from loaded models (for example with
// random weights from the packages' New functions); the device and dtype
// are the UNet's. The pipeline's Close closes the models.
func NewPipeline(u *unet.Model, v *vae.Model, enc *clip.Model, fe *clip.Preprocessor, sc solver.SchedulerConfig) (*Pipeline, error) {
	if u == nil || v == nil || enc == nil || fe == nil {
		return nil, fmt.Errorf("osv: NewPipeline needs a UNet, a VAE, an image encoder and a feature extractor")
	}
	if v.Device() != u.Device() || enc.Device() != u.Device() {
		return nil, fmt.Errorf("osv: models on different devices: unet %s, vae %s, image encoder %s", u.Device(), v.Device(), enc.Device())
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("osv: scheduler: %w", err)
	}
	return &Pipeline{UNet: u, VAE: v, ImageEncoder: enc, FeatureExtractor: fe, SchedulerConfig: sc, device: u.Device(), dtype: u.DType()}, nil
}
