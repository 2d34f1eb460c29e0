package media

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
)

// checkFrames reports the common size of frames, or why they cannot be
// written: none at all, a nil or empty frame, or frames of different sizes.
func checkFrames(frames []image.Image) (w, h int, err error) {
	if len(frames) == 0 {
		return 0, 0, errors.New("no frames to write")
	}
	for i, f := range frames {
		if empty(f) {
			return 0, 0, fmt.Errorf("frame %d is nil or has no pixels", i)
		}
		b := f.Bounds()
		if i == 0 {
			w, h = b.Dx(), b.Dy()
		} else if b.Dx() != w || b.Dy() != h {
			return 0, 0, fmt.Errorf("frame %d is %d×%d but frame 0 is %d×%d", i, b.Dx(), b.Dy(), w, h)
		}
	}
	return w, h, nil
}

// checkFPS refuses a frame rate that is not a positive finite number.
func checkFPS(fps float64) error {
	if !(fps > 0) || math.IsInf(fps, 1) {
		return fmt.Errorf("frame rate %v must be a positive number", fps)
	}
	return nil
}

// to8bit rounds a 16-bit channel value to 8 bits.
func to8bit(v uint16) uint8 {
	return uint8((uint32(v) + 128) / 257)
}

// tempPattern names a temporary file next to path: hidden, and ending like
// path so that programs that go by the extension see the right one.
func tempPattern(path string) (dir, pattern string) {
	base := filepath.Base(path)
	return filepath.Dir(path), "." + base + ".tmp*" + filepath.Ext(base)
}

// writeAtomic writes path through write into a temporary file in the same
// folder, then renames it into place; on failure nothing is left behind.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir, pattern := tempPattern(path)
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
