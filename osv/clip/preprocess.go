package clip

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// PreprocessorConfigFile is the name of CLIPImageProcessor's configuration
// inside a feature_extractor folder.
const PreprocessorConfigFile = "preprocessor_config.json"

// Preprocessor is SVD's image preprocessing for the encoder: an
// antialiasing Gaussian blur and a bicubic resize to Height×Width (the
// processor's crop_size), then CLIP's per-channel normalisation.
type Preprocessor struct {
	Mean, Std     []float64 // per channel (image_mean, image_std)
	Height, Width int64     // the size the images are resized to (crop_size)
}

// openaiMean and openaiStd are CLIPImageProcessor's defaults (OpenAI's
// statistics, which SVD's feature extractor also uses).
var (
	openaiMean = []float64{0.48145466, 0.4578275, 0.40821073}
	openaiStd  = []float64{0.26862954, 0.26130258, 0.27577711}
)

// DefaultPreprocessor is SVD's feature extractor: OpenAI's CLIP mean and
// standard deviation, images resized to 224×224.
func DefaultPreprocessor() *Preprocessor {
	return &Preprocessor{
		Mean: append([]float64(nil), openaiMean...), Std: append([]float64(nil), openaiStd...),
		Height: 224, Width: 224,
	}
}

// cropSize is crop_size, given as {"height": h, "width": w} or as one
// integer for both.
type cropSize struct{ Height, Width int64 }

func (c *cropSize) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		c.Height, c.Width = n, n
		return nil
	}
	var hw struct {
		Height *int64 `json:"height"`
		Width  *int64 `json:"width"`
	}
	if err := json.Unmarshal(b, &hw); err != nil || hw.Height == nil || hw.Width == nil {
		return fmt.Errorf("crop_size: want an integer or {\"height\": h, \"width\": w}, got %s", b)
	}
	c.Height, c.Width = *hw.Height, *hw.Width
	return nil
}

// LoadPreprocessor reads CLIPImageProcessor's preprocessor_config.json
// (path is the file or the folder holding it): image_mean, image_std and
// crop_size; keys it leaves out take CLIPImageProcessor's defaults. The
// processor's resize, crop, rescale and normalise switches are not read:
// SVD always resizes its own way and normalises.
func LoadPreprocessor(path string) (*Preprocessor, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, PreprocessorConfigFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	var raw struct {
		Mean []float64 `json:"image_mean"`
		Std  []float64 `json:"image_std"`
		Crop *cropSize `json:"crop_size"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("clip: %s: %w", path, err)
	}
	p := DefaultPreprocessor()
	if raw.Mean != nil {
		p.Mean = raw.Mean
	}
	if raw.Std != nil {
		p.Std = raw.Std
	}
	if raw.Crop != nil {
		p.Height, p.Width = raw.Crop.Height, raw.Crop.Width
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Validate checks the settings before any tensor is made.
func (p *Preprocessor) Validate() error {
	switch {
	case p == nil:
		return fmt.Errorf("clip preprocessor: nil")
	case len(p.Mean) == 0 || len(p.Mean) != len(p.Std):
		return fmt.Errorf("clip preprocessor: image_mean has %d entries and image_std %d; want one per channel in each", len(p.Mean), len(p.Std))
	case p.Height <= 0 || p.Width <= 0:
		return fmt.Errorf("clip preprocessor: crop_size %d×%d must be positive", p.Height, p.Width)
	}
	for i, s := range p.Std {
		if !(s > 0) {
			return fmt.Errorf("clip preprocessor: image_std[%d] = %g must be positive", i, s)
		}
	}
	return nil
}
