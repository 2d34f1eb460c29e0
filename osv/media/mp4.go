package media

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNoFFmpeg is returned (wrapped) by WriteMP4 when the ffmpeg program is
// not on PATH.
var ErrNoFFmpeg = errors.New("the ffmpeg program is not on PATH; install it (Debian/Ubuntu: apt-get install ffmpeg) or write a .gif or a folder of PNG frames instead")

// WriteMP4 writes frames as an H.264 MP4 (yuv420p) through the ffmpeg
// program, piping raw RGB frames to
//
//	ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -r fps -i - -c:v libx264 -pix_fmt yuv420p path
//
// yuv420p needs an even width and height: an odd one is padded by
// repeating the last column or row. All frames must have the same size.
func WriteMP4(path string, frames []image.Image, fps float64) error {
	if err := writeMP4(path, frames, fps); err != nil {
		return fmt.Errorf("media: writing MP4 %s: %w", path, err)
	}
	return nil
}

func writeMP4(path string, frames []image.Image, fps float64) (err error) {
	w, h, err := checkFrames(frames)
	if err != nil {
		return err
	}
	if err := checkFPS(fps); err != nil {
		return err
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return ErrNoFFmpeg
	}
	dir, pattern := tempPattern(path)
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	tmp.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()

	pw, ph := w+w%2, h+h%2
	var stderr bytes.Buffer
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "rawvideo", "-pix_fmt", "rgb24", "-s", fmt.Sprintf("%dx%d", pw, ph),
		"-r", strconv.FormatFloat(fps, 'g', -1, 64), "-i", "-",
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", "-y", tmp.Name())
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting ffmpeg: %w", err)
	}
	werr := writeRGB24(stdin, frames, pw, ph)
	if cerr := stdin.Close(); werr == nil {
		werr = cerr
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("ffmpeg failed (%v): %s", err, lastLines(stderr.String(), 5))
	}
	if werr != nil {
		return fmt.Errorf("sending frames to ffmpeg: %w", werr)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeRGB24 writes each frame as packed 8-bit RGB rows of pw×ph pixels,
// repeating the last column and row where the frame is smaller.
func writeRGB24(out io.Writer, frames []image.Image, pw, ph int) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	row16 := make([]uint16, 3*pw)
	row := make([]byte, 3*pw)
	for _, f := range frames {
		b := f.Bounds()
		w := b.Dx()
		for y := 0; y < ph; y++ {
			readRow(f, b.Min.Y+min(y, b.Dy()-1), row16)
			for x := 0; x < pw; x++ {
				sx := min(x, w-1)
				row[3*x], row[3*x+1], row[3*x+2] = to8bit(row16[3*sx]), to8bit(row16[3*sx+1]), to8bit(row16[3*sx+2])
			}
			if _, err := bw.Write(row); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// lastLines returns the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "no message"
	}
	return strings.Join(lines, "; ")
}
