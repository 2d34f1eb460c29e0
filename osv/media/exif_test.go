package media

import (
	"encoding/binary"
	"image"
	"testing"

	"github.com/stretchr/testify/require"
)

// tiffOrientation builds an Exif TIFF block whose IFD0 holds one
// Orientation entry.
func tiffOrientation(bo interface {
	binary.ByteOrder
	binary.AppendByteOrder
}, o uint16) []byte {
	out := []byte("II")
	if bo.String() == "BigEndian" {
		out = []byte("MM")
	}
	out = bo.AppendUint16(out, 42)
	out = bo.AppendUint32(out, 8)
	out = bo.AppendUint16(out, 2)                                   // two entries
	out = append(bo.AppendUint16(out, 0x010f), make([]byte, 10)...) // Make, ignored
	out = bo.AppendUint16(out, 0x0112)
	out = bo.AppendUint16(out, 3)
	out = bo.AppendUint32(out, 1)
	out = bo.AppendUint16(out, o)
	out = append(out, 0, 0)
	return bo.AppendUint32(out, 0)
}

// orientationBlock is tiffOrientation in either byte order.
func orientationBlock(bigEndian bool, o uint16) []byte {
	if bigEndian {
		return tiffOrientation(binary.BigEndian, o)
	}
	return tiffOrientation(binary.LittleEndian, o)
}

// withPNGExif inserts an eXIf chunk after a PNG file's IHDR chunk.
func withPNGExif(png, tiff []byte) []byte {
	at := len(pngMagic) + 25
	out := append([]byte{}, png[:at]...)
	out = append(out, pngChunk("eXIf", tiff)...)
	return append(out, png[at:]...)
}

// withJPEGExif inserts an Exif APP1 segment after a JPEG file's SOI marker.
func withJPEGExif(jpg, tiff []byte) []byte {
	payload := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xff, 0xe1)
	out = binary.BigEndian.AppendUint16(out, uint16(2+len(payload)))
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// shown says where stored pixel (sx, sy) of a w×h image appears once
// turned upright, following the Exif definition of each orientation (which
// side of the picture the stored row 0 and column 0 show).
func shown(o, w, h, sx, sy int) (int, int) {
	switch o {
	case 2: // row 0 top, column 0 right
		return w - 1 - sx, sy
	case 3: // row 0 bottom, column 0 right
		return w - 1 - sx, h - 1 - sy
	case 4: // row 0 bottom, column 0 left
		return sx, h - 1 - sy
	case 5: // row 0 left, column 0 top
		return sy, sx
	case 6: // row 0 right, column 0 top
		return h - 1 - sy, sx
	case 7: // row 0 right, column 0 bottom
		return h - 1 - sy, w - 1 - sx
	case 8: // row 0 left, column 0 bottom
		return sy, w - 1 - sx
	}
	return sx, sy
}

func TestLoadImageAppliesExifOrientation(t *testing.T) {
	const w, h = 5, 3
	src := randomNRGBA(w, h, 9)
	plain := encodePNG(t, src)
	for _, bigEndian := range []bool{false, true} {
		for o := 1; o <= 8; o++ {
			img, err := LoadImage(writeFile(t, "o.png", withPNGExif(plain, orientationBlock(bigEndian, uint16(o)))))
			require.NoError(t, err)
			dw, dh := w, h
			if o >= 5 {
				dw, dh = h, w
			}
			require.Equal(t, image.Rect(0, 0, dw, dh), img.Bounds(), "orientation %d", o)
			for sy := 0; sy < h; sy++ {
				for sx := 0; sx < w; sx++ {
					x, y := shown(o, w, h, sx, sy)
					require.Equal(t, rgbAt(src, sx, sy), rgbAt(img, x, y), "orientation %d, stored (%d,%d)", o, sx, sy)
				}
			}
		}
	}
}

func TestLoadImageAppliesJPEGExifOrientation(t *testing.T) {
	// 32×16: left half red, right half blue. Orientation 6 (rotate 90°
	// clockwise) shows it 16×32, red on top.
	src := bands(32, 16, 16, 16)
	img, err := LoadImage(writeFile(t, "o.jpg", withJPEGExif(encodeJPEG(t, src), tiffOrientation(binary.BigEndian, 6))))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 16, 32), img.Bounds())
	top, bottom := rgbAt(img, 8, 4), rgbAt(img, 8, 28)
	require.Greater(t, int(top[0]), 200)
	require.Less(t, int(top[2]), 60)
	require.Greater(t, int(bottom[2]), 200)
	require.Less(t, int(bottom[0]), 60)
}

func TestExifOrientationIgnoresMalformedBlocks(t *testing.T) {
	good := tiffOrientation(binary.LittleEndian, 6)
	require.Equal(t, 6, exifOrientation(good))
	require.Equal(t, 1, exifOrientation(nil))
	require.Equal(t, 1, exifOrientation(good[:20])) // entries cut off
	require.Equal(t, 1, exifOrientation([]byte("XX*\x00\x08\x00\x00\x00")))
	bad := append([]byte{}, good...)
	binary.LittleEndian.PutUint32(bad[4:], 1<<31) // IFD0 beyond the end
	require.Equal(t, 1, exifOrientation(bad))
	big := tiffOrientation(binary.LittleEndian, 9) // out of range
	require.Equal(t, 1, exifOrientation(big))
	require.Nil(t, jpegExif([]byte{0xff, 0xd8, 0xff, 0xe1, 0x00}))
	require.Nil(t, pngExif(append(append([]byte{}, pngMagic...), 0xff, 0xff, 0xff, 0xff, 'e', 'X', 'I', 'f')))
}
