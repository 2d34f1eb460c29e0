package media

import (
	"image"
	"image/color"
)

// readRow writes the straight (un-premultiplied) 16-bit RGB values of row y
// of img into dst (3 values a pixel, left to right), ignoring alpha. Common
// decoder outputs take a fast path (YCbCr through color.YCbCrToRGB's 8-bit
// values); any other image goes through color.NRGBA64Model.
func readRow(img image.Image, y int, dst []uint16) {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.NRGBA:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := 0; i < b.Dx(); i++ {
			p := row[4*i : 4*i+3]
			dst[3*i], dst[3*i+1], dst[3*i+2] = uint16(p[0])*0x101, uint16(p[1])*0x101, uint16(p[2])*0x101
		}
	case *image.RGBA:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := 0; i < b.Dx(); i++ {
			p := row[4*i : 4*i+4]
			if p[3] == 0xff {
				dst[3*i], dst[3*i+1], dst[3*i+2] = uint16(p[0])*0x101, uint16(p[1])*0x101, uint16(p[2])*0x101
				continue
			}
			c := color.NRGBA64Model.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA64)
			dst[3*i], dst[3*i+1], dst[3*i+2] = c.R, c.G, c.B
		}
	case *image.Gray:
		row := m.Pix[m.PixOffset(b.Min.X, y):]
		for i := 0; i < b.Dx(); i++ {
			v := uint16(row[i]) * 0x101
			dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
		}
	case *image.YCbCr:
		for i := 0; i < b.Dx(); i++ { // 8-bit RGB, as JPEG decoders give
			c := m.YCbCrAt(b.Min.X+i, y)
			r, g, bl := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			dst[3*i], dst[3*i+1], dst[3*i+2] = uint16(r)*0x101, uint16(g)*0x101, uint16(bl)*0x101
		}
	default:
		for i := 0; i < b.Dx(); i++ {
			c := color.NRGBA64Model.Convert(img.At(b.Min.X+i, y)).(color.NRGBA64)
			dst[3*i], dst[3*i+1], dst[3*i+2] = c.R, c.G, c.B
		}
	}
}

// empty reports whether img is nil or has no pixels.
func empty(img image.Image) bool {
	return img == nil || img.Bounds().Empty()
}
