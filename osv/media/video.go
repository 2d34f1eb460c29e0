package media

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
)

// WriteVideo writes frames in the format that path names: ".gif"
// (WriteGIF), ".mp4" (WriteMP4), or PNG frames (WritePNGs) when path is an
// existing folder or has no extension (the folder is created). Extensions
// are matched without regard to case; any other extension is an error.
func WriteVideo(path string, frames []image.Image, fps float64) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return WritePNGs(path, frames)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".gif":
		return WriteGIF(path, frames, fps)
	case ".mp4":
		return WriteMP4(path, frames, fps)
	case "":
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			return fmt.Errorf("media: writing video %s: the path has no extension and is an existing file, not a folder for PNG frames", path)
		}
		return WritePNGs(path, frames)
	default:
		return fmt.Errorf("media: writing video %s: unknown extension %q (want .gif, .mp4, or a folder for PNG frames)", path, ext)
	}
}
