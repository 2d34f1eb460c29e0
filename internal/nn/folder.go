package nn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// Weight file names, in order of preference: a single file, then a sharded
// checkpoint's index, then the fp16 variants.
var (
	DiffusersWeights = []string{
		"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
		"diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.safetensors.index.json",
	}
	TransformersWeights = []string{
		"model.safetensors", "model.safetensors.index.json",
		"model.fp16.safetensors", "model.fp16.safetensors.index.json",
	}
)

// CheckFolder reports a clear error unless dir is a folder.
func CheckFolder(what, dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", what, dir)
	}
	return nil
}

// OpenWeights opens the first of names present in dir (single file or
// sharded through its index) and returns it with its path.
func OpenWeights(what, dir string, names []string) (*safetensors.Checkpoint, string, error) {
	for _, name := range names {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		ck, err := safetensors.OpenCheckpoint(path)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		return ck, path, nil
	}
	return nil, "", fmt.Errorf("%s: %s holds no weights (looked for %s)", what, dir, strings.Join(names, ", "))
}

// LoadFolder is a model package's Load: options, the folder, its config
// (read), the weights (files, in order of preference), the model built by
// build (which registers its parameters and records o), and a strict load.
func LoadFolder[C, M any](what, dir string, files []string, opts []torch.ModelOption,
	read func(dir string) (C, error), build func(C, torch.ModelOptions) (M, *torch.Params)) (M, error) {
	var zero M
	o, err := torch.NewModelOptions(what, opts)
	if err != nil {
		return zero, err
	}
	if err := CheckFolder(what, dir); err != nil {
		return zero, err
	}
	cfg, err := read(dir)
	if err != nil {
		return zero, err
	}
	ck, path, err := OpenWeights(what, dir, files)
	if err != nil {
		return zero, err
	}
	defer ck.Close()
	m, ps := build(cfg, o)
	if err := ps.Load(ck, what+": "+path, o.DType, o.Device); err != nil {
		return zero, err
	}
	return m, nil
}

// NewRandom is a model package's New: options, the config validated, the
// model built by build and its parameters drawn at random from o's seed.
func NewRandom[C, M any](what string, cfg C, opts []torch.ModelOption, validate func(C) error, build func(C, torch.ModelOptions) (M, *torch.Params)) (M, error) {
	var zero M
	o, err := torch.NewModelOptions(what, opts)
	if err != nil {
		return zero, err
	}
	if err := validate(cfg); err != nil {
		return zero, err
	}
	m, ps := build(cfg, o)
	if err := ps.Init(what, o); err != nil {
		return zero, err
	}
	return m, nil
}

// LoadStateDict is a model package's loader of a bare state_dict: options,
// cfg validated, one safetensors file (or a sharded checkpoint's index),
// the model built by build and a strict load. Every error names the file.
func LoadStateDict[C, M any](what, file string, cfg C, opts []torch.ModelOption,
	validate func(C) error, build func(C, torch.ModelOptions) (M, *torch.Params)) (M, error) {
	var zero M
	o, err := torch.NewModelOptions(what, opts)
	if err != nil {
		return zero, err
	}
	if err := validate(cfg); err != nil {
		return zero, fmt.Errorf("%s: %s: %w", what, file, err)
	}
	if st, err := os.Stat(file); err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	} else if st.IsDir() {
		return zero, fmt.Errorf("%s: %s is a folder, not a safetensors file", what, file)
	}
	ck, err := safetensors.OpenCheckpoint(file)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	defer ck.Close()
	m, ps := build(cfg, o)
	if err := ps.Load(ck, what+": "+file, o.DType, o.Device); err != nil {
		return zero, err
	}
	return m, nil
}
