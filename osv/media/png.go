package media

import (
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
)

// FrameName is the file name of frame i in a folder that WritePNGs writes:
// frame_0000.png, frame_0001.png, ….
func FrameName(i int) string {
	return fmt.Sprintf("frame_%04d.png", i)
}

// WritePNGs writes frames as dir/frame_0000.png, dir/frame_0001.png, …,
// creating dir (and its parents) when missing. Other files in dir, such as
// the frames of an earlier, longer clip, are left alone. All frames must
// have the same size.
func WritePNGs(dir string, frames []image.Image) error {
	if _, _, err := checkFrames(frames); err != nil {
		return fmt.Errorf("media: writing PNG frames to %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("media: writing PNG frames: %w", err)
	}
	for i, f := range frames {
		path := filepath.Join(dir, FrameName(i))
		if err := writeAtomic(path, func(w io.Writer) error { return png.Encode(w, f) }); err != nil {
			return fmt.Errorf("media: writing PNG frame %s: %w", path, err)
		}
	}
	return nil
}
