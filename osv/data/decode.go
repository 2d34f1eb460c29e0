package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Options say how clips are cut.
type Options struct {
	Frames int     // F, frames per clip (14)
	FPS    float64 // the frame rate clips are resampled to (7)
	Width  int     // frame width after the centre crop (1024)
	Height int     // frame height after the centre crop (576)
}

func (o Options) withDefaults() Options {
	if o.Frames == 0 {
		o.Frames = 14
	}
	if o.FPS == 0 {
		o.FPS = 7
	}
	if o.Width == 0 {
		o.Width = 1024
	}
	if o.Height == 0 {
		o.Height = 576
	}
	return o
}

func (o Options) validate() error {
	if o.Frames < 1 || o.FPS <= 0 || o.Width < 2 || o.Height < 2 || o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("data: frames %d, fps %g, size %d×%d: want at least 1 frame, a positive rate and an even size", o.Frames, o.FPS, o.Width, o.Height)
	}
	return nil
}

// Clip is one decoded clip: Frames×Height×Width RGB pixels, 8 bits each,
// frame after frame, row after row (ffmpeg's rgb24).
type Clip struct {
	Path          string
	Frames        int
	Width, Height int
	Pixels        []byte
}

// Frame returns frame i's pixels.
func (c *Clip) Frame(i int) []byte {
	n := c.Width * c.Height * 3
	return c.Pixels[i*n : (i+1)*n]
}

// ErrNoFFmpeg is returned when the ffmpeg program is not on the PATH.
var ErrNoFFmpeg = errors.New("data: the ffmpeg program is not on PATH; install it (Debian/Ubuntu: apt-get install ffmpeg)")

// Decode reads one clip from a video file: the first o.Frames frames at
// o.FPS, scaled to cover o.Width×o.Height and centre-cropped. A missing,
// corrupt or too short video is an error naming the file.
func Decode(ctx context.Context, path string, o Options) (*Clip, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, ErrNoFFmpeg
	}
	filter := fmt.Sprintf("fps=%g,scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d", o.FPS, o.Width, o.Height, o.Width, o.Height)
	cmd := exec.CommandContext(ctx, bin, "-nostdin", "-v", "error", "-i", path, "-vf", filter,
		"-frames:v", fmt.Sprint(o.Frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
	var stdout, stderr bytes.Buffer
	stdout.Grow(o.Frames * o.Width * o.Height * 3)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("data: %s: not a readable video: %s", path, lastLine(stderr.String(), err))
	}
	frame := o.Width * o.Height * 3
	got := stdout.Len() / frame
	if got < o.Frames {
		return nil, fmt.Errorf("data: %s: too short: %d of %d frames at %g fps", path, got, o.Frames, o.FPS)
	}
	return &Clip{Path: path, Frames: o.Frames, Width: o.Width, Height: o.Height, Pixels: stdout.Bytes()[:o.Frames*frame]}, nil
}

func lastLine(s string, err error) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return err.Error()
	}
	lines := strings.Split(s, "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
