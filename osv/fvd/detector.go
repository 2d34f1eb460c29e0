package fvd

import (
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/torch"
)

// Resolution is the side of the detector's square input frames.
const Resolution = 224

// Option configures LoadDetector.
type Option func(*options) error

type options struct {
	device string
	batch  int
}

// WithDevice runs the detector, and the preprocessing, on "cpu" (the
// default), "cuda" or "cuda:N".
func WithDevice(device string) Option {
	return func(o *options) error { o.device = device; return nil }
}

// WithBatchSize sets how many clips go through the detector in one call
// (16; the reference uses 10). Features do not depend on it beyond
// rounding.
func WithBatchSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("fvd: batch size %d: want at least 1", n)
		}
		o.batch = n
		return nil
	}
}

// Detector is the I3D video classifier of the FVD metric, a TorchScript
// file called as the reference calls it. Its methods may be called from
// several goroutines; calls run one at a time.
type Detector struct {
	mu    sync.Mutex
	m     *torch.ScriptModule
	dev   torch.Device
	batch int
	dim   int // the feature width, once known
}

// The reference's keyword arguments: the clips are already in [−1, 1] at
// 224×224, and the features come before the classifier's softmax.
var detectorKwargs = map[string]any{"rescale": false, "resize": false, "return_features": true}

// LoadDetector reads the I3D TorchScript file (i3d_torchscript.pt, as
// StyleGAN-V distributes it) onto the device. Its forward must take the
// reference's call: forward(x: Tensor, rescale: bool, resize: bool,
// return_features: bool) -> Tensor, with x [N, 3, T, 224, 224] in [−1, 1];
// the features it returns are [N, 400]. A missing file, a file that is not
// TorchScript and a module of another signature are errors naming the
// file.
func LoadDetector(path string, opts ...Option) (*Detector, error) {
	o := options{device: "cpu", batch: 16}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	dev, err := torch.ParseDevice(o.device)
	if err != nil {
		return nil, fmt.Errorf("fvd: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("fvd: detector: %w", err)
	}
	m, err := torch.LoadScriptModule(path, dev)
	if err != nil {
		return nil, fmt.Errorf("fvd: detector: %w", err)
	}
	if err := checkSignature(m); err != nil {
		m.Close()
		return nil, err
	}
	return &Detector{m: m, dev: dev, batch: o.batch}, nil
}

// wantCall is the reference call, for messages.
const wantCall = "forward(x: Tensor, rescale: bool, resize: bool, return_features: bool) -> Tensor (StyleGAN-V's i3d_torchscript.pt)"

// checkSignature checks that forward takes the reference's call.
func checkSignature(m *torch.ScriptModule) error {
	sig, err := m.Signature("forward")
	if err != nil {
		return fmt.Errorf("fvd: detector: %w", err)
	}
	bad := func(why string) error {
		return fmt.Errorf("fvd: detector %s: %s: its forward is %s, want %s", m.Path(), why, sig.Schema, wantCall)
	}
	if len(sig.Args) == 0 || sig.Args[0].Type != "Tensor" || sig.Args[0].KeywordOnly {
		return bad("the first argument is not a positional tensor")
	}
	for _, name := range []string{"rescale", "resize", "return_features"} {
		a, ok := sig.Arg(name)
		if !ok {
			return bad("no argument " + name)
		}
		if a.Type != "bool" {
			return bad(fmt.Sprintf("argument %s is %s, not bool", name, a.Type))
		}
	}
	for _, a := range sig.Args[1:] {
		switch a.Name {
		case "rescale", "resize", "return_features":
		default:
			if !a.HasDefault {
				return bad("argument " + a.Name + " has no default")
			}
		}
	}
	if len(sig.Returns) != 1 || sig.Returns[0] != "Tensor" {
		return bad("it returns " + strings.Join(sig.Returns, ", ") + ", not one tensor")
	}
	return nil
}

// Device is where the detector runs.
func (d *Detector) Device() torch.Device { return d.dev }

// Path is the detector's file.
func (d *Detector) Path() string { return d.m.Path() }

// Close releases the detector; it is safe to call twice.
func (d *Detector) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m.Close()
}

// Preprocess is the reference preprocessing of one clip: video [T, 3, H,
// W] (frames in [0, 1], any floating dtype) has its shorter side scaled to
// 224 (bilinear, align_corners false, the longer side rounded up), is
// centre-cropped to 224×224 and mapped by (x − 0.5)·2 into [−1, 1]; the
// result is the detector's input for that clip, [3, T, 224, 224] float32,
// on the video's device, owned by s. A video of another shape or dtype
// panics with *torch.Error, like the engine's operations.
func Preprocess(s *torch.Scope, video *torch.Tensor) *torch.Tensor {
	sh := video.Shape()
	if len(sh) != 4 || sh[1] != 3 || sh[0] < 1 || sh[2] < 1 || sh[3] < 1 {
		torch.Failf("fvd", "video of shape %v: want frames [T, 3, H, W]", sh)
	}
	if !video.DType().IsFloat() {
		torch.Failf("fvd", "video of dtype %s: want floats in [0, 1] (ClipTensor converts decoded 8-bit clips)", video.DType())
	}
	c := s.Child()
	defer c.Close()
	h, w := sh[2], sh[3]
	th, tw := resized(h, w)
	x := c.Contiguous(c.Cast(video, torch.Float32))
	x = c.Interpolate(x, torch.Bilinear, th, tw, false, false)
	top, left := (th-Resolution)/2, (tw-Resolution)/2
	x = c.Slice(c.Slice(x, 2, top, top+Resolution), 3, left, left+Resolution)
	x = c.MulScalar(c.AddScalar(x, -0.5), 2)
	return c.Keep(c.Contiguous(c.Permute(x, 1, 0, 2, 3)))
}

// resized is the size the shorter side's scaling to Resolution gives, the
// longer side rounded up, computed in float64 as the reference computes it.
func resized(h, w int64) (int64, int64) {
	scale := float64(Resolution) / float64(min(h, w))
	if h < w {
		return Resolution, int64(math.Ceil(float64(w) * scale))
	}
	return int64(math.Ceil(float64(h) * scale)), Resolution
}

// Features runs the detector on videos, each one clip [T, 3, H, W] or a
// batch of clips [B, T, 3, H, W], frames in [0, 1] (a Pipeline's output
// [1, F, 3, H, W], say), on any device: every clip is preprocessed on the
// detector's device (Preprocess) and they go through the detector in
// batches. It returns one feature row per clip, in order. Clips may differ
// in size, not in T. A nil or released tensor, a wrong shape or dtype, and
// a detector that fails or returns other than [N, D] are errors.
func (d *Detector) Features(videos []*torch.Tensor) (feats [][]float64, err error) {
	defer torch.Recover(&err)
	type clip struct {
		video *torch.Tensor
		index int64 // within a batch of clips; -1 for a single clip
	}
	var clips []clip
	frames := int64(-1)
	for i, v := range videos {
		if v.Released() {
			return nil, fmt.Errorf("fvd: video %d: a nil or released tensor", i)
		}
		sh := v.Shape()
		var t int64
		switch {
		case len(sh) == 4:
			clips = append(clips, clip{v, -1})
			t = sh[0]
		case len(sh) == 5:
			for j := range sh[0] {
				clips = append(clips, clip{v, j})
			}
			t = sh[1]
		default:
			return nil, fmt.Errorf("fvd: video %d: shape %v: want [T, 3, H, W] or [B, T, 3, H, W]", i, sh)
		}
		if frames >= 0 && t != frames {
			return nil, fmt.Errorf("fvd: video %d has %d frames, video 0 %d: the clips of a set need one length", i, t, frames)
		}
		frames = t
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for start := 0; start < len(clips); start += d.batch {
		end := min(start+d.batch, len(clips))
		rows, err := d.run(end-start, func(s *torch.Scope, i int) *torch.Tensor {
			c := clips[start+i]
			v := c.video
			if c.index >= 0 {
				v = s.Select(v, 0, c.index)
			}
			return v
		})
		if err != nil {
			return nil, err
		}
		feats = append(feats, rows...)
	}
	return feats, nil
}

// ClipFeatures runs the detector on decoded clips (8-bit RGB frames, as
// osv/data decodes them), converted by ClipTensor batch by batch; see
// Features.
func (d *Detector) ClipFeatures(clips []*data.Clip) (feats [][]float64, err error) {
	defer torch.Recover(&err)
	for i, c := range clips {
		if c == nil {
			return nil, fmt.Errorf("fvd: clip %d is nil", i)
		}
		if c.Frames != clips[0].Frames {
			return nil, fmt.Errorf("fvd: clip %d (%s) has %d frames, clip 0 %d: the clips of a set need one length", i, c.Path, c.Frames, clips[0].Frames)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for start := 0; start < len(clips); start += d.batch {
		end := min(start+d.batch, len(clips))
		rows, err := d.run(end-start, func(s *torch.Scope, i int) *torch.Tensor {
			t, err := ClipTensor(s, clips[start+i], d.dev)
			if err != nil {
				torch.Failf("fvd", "%v", err)
			}
			return t
		})
		if err != nil {
			return nil, err
		}
		feats = append(feats, rows...)
	}
	return feats, nil
}

// run preprocesses the n clips that clip gives (in a scope of their own)
// and calls the detector on them; d.mu is held.
func (d *Detector) run(n int, clip func(s *torch.Scope, i int) *torch.Tensor) (rows [][]float64, err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	xs := make([]*torch.Tensor, n)
	for i := range xs {
		c := s.Child()
		v := clip(c, i)
		if v.Device() != d.dev {
			moved, err := v.To(c, v.DType(), d.dev)
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("fvd: %w", err)
			}
			v = moved
		}
		x := Preprocess(c, v)
		sh := x.Shape()
		xs[i] = c.Keep(c.Reshape(x, append([]int64{1}, sh...)...))
		c.Close()
	}
	x := s.Cat(0, xs...)
	s.Drop(xs...)
	out, err := d.m.Call(s, "forward", []*torch.Tensor{x}, detectorKwargs)
	if err != nil {
		return nil, fmt.Errorf("fvd: detector: %w", err)
	}
	sh := out.Shape()
	if len(sh) != 2 || sh[0] != int64(n) || sh[1] < 1 {
		return nil, fmt.Errorf("fvd: detector %s returned shape %v for %d clips: want features [%d, D] (%s)", d.m.Path(), sh, n, n, wantCall)
	}
	if d.dim != 0 && int(sh[1]) != d.dim {
		return nil, fmt.Errorf("fvd: detector %s returned %d features, earlier %d", d.m.Path(), sh[1], d.dim)
	}
	d.dim = int(sh[1])
	vals, err := out.Float32s()
	if err != nil {
		return nil, fmt.Errorf("fvd: %w", err)
	}
	rows = make([][]float64, n)
	for i := range rows {
		row := make([]float64, d.dim)
		for j := range row {
			row[j] = float64(vals[i*d.dim+j])
		}
		rows[i] = row
	}
	return rows, nil
}

// ClipTensor converts a decoded clip (Frames×Height×Width RGB bytes) into
// frames [T, 3, H, W] float32 in [0, 1] (each byte divided by 255) on dev,
// owned by s (the caller when s is nil), the input of Features.
func ClipTensor(s *torch.Scope, c *data.Clip, dev torch.Device) (t *torch.Tensor, err error) {
	defer torch.Recover(&err)
	if c == nil {
		return nil, fmt.Errorf("fvd: nil clip")
	}
	if c.Frames < 1 || c.Width < 1 || c.Height < 1 || len(c.Pixels) != c.Frames*c.Height*c.Width*3 {
		return nil, fmt.Errorf("fvd: clip %s: %d bytes for %d frames of %d×%d", c.Path, len(c.Pixels), c.Frames, c.Width, c.Height)
	}
	k := s.Child()
	defer k.Close()
	px, err := torch.FromUint8(k, c.Pixels, []int64{int64(c.Frames), int64(c.Height), int64(c.Width), 3}, torch.Uint8, dev)
	if err != nil {
		return nil, fmt.Errorf("fvd: clip %s: %w", c.Path, err)
	}
	x := k.Cast(px, torch.Float32)
	x = k.Div(x, k.Scalar(x, 255))
	return k.Keep(k.Contiguous(k.Permute(x, 0, 3, 1, 2))), nil
}
