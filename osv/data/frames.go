package data

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// FrameOptions say which frames DecodeFrames takes. The frames keep the
// video's own size (after its rotation metadata is applied): evaluation
// code resizes them itself, as the reference FVD code does.
type FrameOptions struct {
	Frames int     // T, frames per clip (16)
	FPS    float64 // resample the video to this rate first (0: its own frames, as decoded)
	// Spread takes T frames evenly spaced over the whole video (frame
	// ⌊i·n/T⌋ of its n frames, i = 0..T−1) instead of the first T; it
	// needs FPS 0 and the ffprobe program (it comes with ffmpeg).
	Spread bool
}

func (o FrameOptions) withDefaults() FrameOptions {
	if o.Frames == 0 {
		o.Frames = 16
	}
	return o
}

func (o FrameOptions) validate() error {
	switch {
	case o.Frames < 1 || o.FPS < 0:
		return fmt.Errorf("data: frames %d, fps %g: want at least 1 frame and a rate ≥ 0", o.Frames, o.FPS)
	case o.Spread && o.FPS > 0:
		return fmt.Errorf("data: evenly spaced frames are taken from the video's own frames: leave the rate at 0 (got %g)", o.FPS)
	}
	return nil
}

// DecodeFrames reads one clip from a video file at the video's own size:
// the first o.Frames frames (at o.FPS when it is set), or o.Frames frames
// evenly spaced over the whole video with o.Spread. A missing, corrupt or
// too short video is an error naming the file; a missing ffmpeg (or
// ffprobe, for Spread) is ErrNoFFmpeg.
func DecodeFrames(ctx context.Context, path string, o FrameOptions) (*Clip, error) {
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
	var filters []string
	if o.FPS > 0 {
		filters = append(filters, fmt.Sprintf("fps=%g", o.FPS))
	}
	if o.Spread {
		n, err := countFrames(ctx, path)
		if err != nil {
			return nil, err
		}
		if n < o.Frames {
			return nil, fmt.Errorf("data: %s: too short: %d frames, %d wanted", path, n, o.Frames)
		}
		terms := make([]string, o.Frames)
		for i := range terms {
			terms[i] = fmt.Sprintf("eq(n,%d)", i*n/o.Frames)
		}
		// Quoted, the commas belong to the expression, not to the filter graph.
		filters = append(filters, "select='"+strings.Join(terms, "+")+"'")
	}
	args := []string{"-nostdin", "-v", "error", "-i", path}
	if len(filters) > 0 {
		args = append(args, "-vf", strings.Join(filters, ","))
	}
	// passthrough: every frame out of the filters once, none duplicated
	// to fill a constant rate.
	args = append(args, "-vsync", "passthrough", "-frames:v", strconv.Itoa(o.Frames),
		"-f", "image2pipe", "-vcodec", "ppm", "pipe:1")
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("data: %s: not a readable video: %s", path, lastLine(stderr.String(), err))
	}
	c, err := readPPMs(&stdout, o.Frames)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	if c.Frames < o.Frames {
		how := "at its own rate"
		if o.FPS > 0 {
			how = fmt.Sprintf("at %g fps", o.FPS)
		}
		return nil, fmt.Errorf("data: %s: too short: %d of %d frames %s", path, c.Frames, o.Frames, how)
	}
	c.Path = path
	return c, nil
}

// countFrames is the number of video packets (frames, for the codecs of
// video files) of the first video stream, read by ffprobe without decoding.
func countFrames(ctx context.Context, path string) (int, error) {
	bin, err := exec.LookPath("ffprobe")
	if err != nil {
		return 0, ErrNoFFmpeg
	}
	cmd := exec.CommandContext(ctx, bin, "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("data: %s: not a readable video: %s", path, lastLine(stderr.String(), err))
	}
	field := strings.TrimSpace(strings.Split(strings.TrimSpace(stdout.String()), "\n")[0])
	n, err := strconv.Atoi(strings.TrimSuffix(field, ","))
	if err != nil {
		return 0, fmt.Errorf("data: %s: no video stream (ffprobe counted %q)", path, field)
	}
	return n, nil
}

// readPPMs reads up to max binary PPM images (P6, 8 bits) of one size,
// one after another, into a clip.
func readPPMs(r io.Reader, max int) (*Clip, error) {
	br := bufio.NewReader(r)
	c := &Clip{}
	for c.Frames < max {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			break
		}
		w, h, err := ppmHeader(br)
		if err != nil {
			return nil, fmt.Errorf("frame %d: %w", c.Frames, err)
		}
		if c.Frames == 0 {
			c.Width, c.Height = w, h
			c.Pixels = make([]byte, 0, max*w*h*3)
		} else if w != c.Width || h != c.Height {
			return nil, fmt.Errorf("frame %d is %d×%d, frame 0 %d×%d", c.Frames, w, h, c.Width, c.Height)
		}
		n := len(c.Pixels)
		c.Pixels = append(c.Pixels, make([]byte, w*h*3)...)
		if _, err := io.ReadFull(br, c.Pixels[n:]); err != nil {
			return nil, fmt.Errorf("frame %d: truncated: %w", c.Frames, err)
		}
		c.Frames++
	}
	return c, nil
}

// ppmHeader reads "P6 width height 255" and the one whitespace byte
// after it.
func ppmHeader(br *bufio.Reader) (w, h int, err error) {
	var fields [4]string
	for i := range fields {
		tok, err := ppmToken(br)
		if err != nil {
			return 0, 0, err
		}
		fields[i] = tok
	}
	if fields[0] != "P6" {
		return 0, 0, fmt.Errorf("not a binary PPM image (magic %q)", fields[0])
	}
	w, errW := strconv.Atoi(fields[1])
	h, errH := strconv.Atoi(fields[2])
	if errW != nil || errH != nil || w < 1 || h < 1 || w > 1<<15 || h > 1<<15 {
		return 0, 0, fmt.Errorf("bad PPM size %q×%q", fields[1], fields[2])
	}
	if fields[3] != "255" {
		return 0, 0, fmt.Errorf("PPM with maximum value %s, want 255", fields[3])
	}
	return w, h, nil
}

// ppmToken reads one header token and consumes the whitespace byte that
// ends it.
func ppmToken(br *bufio.Reader) (string, error) {
	var tok []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return "", fmt.Errorf("truncated PPM header: %w", err)
		}
		switch {
		case b == '#' && len(tok) == 0:
			if _, err := br.ReadString('\n'); err != nil {
				return "", fmt.Errorf("truncated PPM header: %w", err)
			}
		case b == ' ' || b == '\n' || b == '\r' || b == '\t':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			if len(tok) > 16 {
				return "", errors.New("bad PPM header")
			}
			tok = append(tok, b)
		}
	}
}
