package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
)

// MaxPixels bounds the width×height that LoadImage accepts, so that a small
// file whose header claims a huge image is refused before it is decoded.
const MaxPixels = 1 << 28

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8, 0xff}
)

// format is one image codec recognised by its leading bytes.
type format struct {
	name   string
	magic  []byte
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
	exif   func([]byte) []byte
}

var formats = []format{
	{"PNG", pngMagic, png.DecodeConfig, png.Decode, pngExif},
	{"JPEG", jpegMagic, jpeg.DecodeConfig, jpeg.Decode, jpegExif},
}

// LoadImage reads a PNG or JPEG file, recognising the format by the file's
// content (never its extension), and turns it upright as its EXIF
// Orientation tag says, as diffusers' load_image does. Errors name the file:
// a missing or unreadable file, content that is not a PNG or JPEG image,
// truncated or corrupt data, and an image with no pixels or more than
// MaxPixels.
func LoadImage(path string) (image.Image, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var f *format
	for i := range formats {
		if bytes.HasPrefix(data, formats[i].magic) {
			f = &formats[i]
		}
	}
	if f == nil {
		if len(data) == 0 {
			return nil, fmt.Errorf("media: %s: empty file, not a PNG or JPEG image", path)
		}
		return nil, fmt.Errorf("media: %s: not a PNG or JPEG image", path)
	}
	if w, h, ok := pngHeaderSize(data); ok && (w == 0 || h == 0) {
		return nil, fmt.Errorf("media: %s: PNG image has zero size (%d×%d)", path, w, h)
	}
	cfg, err := f.config(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("media: %s: corrupt or truncated %s image: %w", path, f.name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("media: %s: %s image has zero size (%d×%d)", path, f.name, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("media: %s: %s image of %d×%d pixels is larger than %d pixels", path, f.name, cfg.Width, cfg.Height, MaxPixels)
	}
	img, err := f.decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("media: %s: corrupt or truncated %s image: %w", path, f.name, err)
	}
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("media: %s: %s image has zero size", path, f.name)
	}
	return orient(img, exifOrientation(f.exif(data))), nil
}

// readFile reads path, checking its first bytes before reading the rest,
// so that a large file of another kind is refused early.
func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("media: loading image: %w", err)
	}
	defer fh.Close()
	head := make([]byte, len(pngMagic))
	n, err := io.ReadFull(fh, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("media: loading image: %w", err)
	}
	head = head[:n]
	if !bytes.HasPrefix(head, pngMagic) && !bytes.HasPrefix(head, jpegMagic) {
		return head, nil
	}
	rest, err := io.ReadAll(fh)
	if err != nil {
		return nil, fmt.Errorf("media: loading image %s: %w", path, err)
	}
	return append(head, rest...), nil
}

// pngHeaderSize reads the width and height in a PNG file's IHDR chunk
// (which the decoder refuses when zero, with a less helpful message).
func pngHeaderSize(data []byte) (w, h uint32, ok bool) {
	if len(data) < 24 || !bytes.HasPrefix(data, pngMagic) || string(data[12:16]) != "IHDR" {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(data[16:]), binary.BigEndian.Uint32(data[20:]), true
}
