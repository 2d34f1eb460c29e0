package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}))
	return b.Bytes()
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

func TestLoadImageByContent(t *testing.T) {
	src := randomNRGBA(9, 6, 6)
	// A PNG named .jpg loads as the PNG it is, losslessly.
	img, err := LoadImage(writeFile(t, "photo.jpg", encodePNG(t, src)))
	require.NoError(t, err)
	requireSamePixels(t, src, img)

	// A JPEG with no extension at all loads too (lossy: compare loosely).
	smooth := flat(16, 16, green)
	img, err = LoadImage(writeFile(t, "picture", encodeJPEG(t, smooth)))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 16, 16), img.Bounds())
	c := rgbAt(img, 8, 8)
	require.InDelta(t, 0, int(c[0]), 3)
	require.InDelta(t, 255, int(c[1]), 3)
}

func TestLoadImageRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.png")
	_, err := LoadImage(missing)
	require.ErrorContains(t, err, missing)
	require.ErrorIs(t, err, os.ErrNotExist)

	_, err = LoadImage(dir)
	require.ErrorContains(t, err, dir)

	text := writeFile(t, "notes.png", []byte("just some text, not pixels\n"))
	_, err = LoadImage(text)
	require.ErrorContains(t, err, text+": not a PNG or JPEG image")

	short := writeFile(t, "tiny.png", []byte("\x89P"))
	_, err = LoadImage(short)
	require.ErrorContains(t, err, short+": not a PNG or JPEG image")

	emptyFile := writeFile(t, "empty.png", nil)
	_, err = LoadImage(emptyFile)
	require.ErrorContains(t, err, emptyFile+": empty file")

	full := encodePNG(t, randomNRGBA(32, 32, 7))
	trunc := writeFile(t, "trunc.png", full[:len(full)/2])
	_, err = LoadImage(trunc)
	require.ErrorContains(t, err, trunc+": corrupt or truncated PNG image")

	headerOnly := writeFile(t, "header.png", full[:20])
	_, err = LoadImage(headerOnly)
	require.ErrorContains(t, err, headerOnly+": corrupt or truncated PNG image")

	jp := encodeJPEG(t, randomNRGBA(32, 32, 8))
	truncJ := writeFile(t, "trunc.jpeg", jp[:len(jp)/3])
	_, err = LoadImage(truncJ)
	require.ErrorContains(t, err, truncJ+": corrupt or truncated JPEG image")

	ihdr := func(w, h uint32) []byte {
		d := binary.BigEndian.AppendUint32(nil, w)
		d = binary.BigEndian.AppendUint32(d, h)
		d = append(d, 8, 2, 0, 0, 0) // 8-bit RGB
		out := append([]byte{}, pngMagic...)
		out = append(out, pngChunk("IHDR", d)...)
		return append(out, pngChunk("IEND", nil)...)
	}
	zero := writeFile(t, "zero.png", ihdr(0, 5))
	_, err = LoadImage(zero)
	require.ErrorContains(t, err, zero+": PNG image has zero size (0×5)")

	huge := writeFile(t, "huge.png", ihdr(1<<20, 1<<20))
	_, err = LoadImage(huge)
	require.ErrorContains(t, err, huge+": PNG image of 1048576×1048576 pixels is larger than")
}
