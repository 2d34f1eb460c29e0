package media

import (
	"image"
	"image/draw"
)

// orient turns img upright for an EXIF orientation: 2 mirror, 3 rotate
// 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate
// 90° counter-clockwise. Orientation 1 returns img itself.
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	src := pixels(img)
	w, h := src.img.Bounds().Dx(), src.img.Bounds().Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := src.blank(dw, dh)
	n := src.bpp
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			copy(dst.pix[y*dst.stride+x*n:][:n], src.pix[sy*src.stride+sx*n:][:n])
		}
	}
	return dst.img
}

// pixbuf is an image with a plain pixel buffer whose bounds start at (0,0).
type pixbuf struct {
	img         image.Image
	pix         []byte
	stride, bpp int
}

// pixels returns img as a pixbuf: the image itself when it already is one
// of the standard library's byte-layout types at (0,0), otherwise a copy
// (an *image.NRGBA for straight-colour input, else an *image.RGBA).
func pixels(img image.Image) pixbuf {
	b := img.Bounds()
	if b.Min == (image.Point{}) {
		switch m := img.(type) {
		case *image.NRGBA:
			return pixbuf{m, m.Pix, m.Stride, 4}
		case *image.RGBA:
			return pixbuf{m, m.Pix, m.Stride, 4}
		case *image.NRGBA64:
			return pixbuf{m, m.Pix, m.Stride, 8}
		case *image.RGBA64:
			return pixbuf{m, m.Pix, m.Stride, 8}
		case *image.Gray:
			return pixbuf{m, m.Pix, m.Stride, 1}
		case *image.Gray16:
			return pixbuf{m, m.Pix, m.Stride, 2}
		}
	}
	r := image.Rect(0, 0, b.Dx(), b.Dy())
	if m, ok := img.(*image.NRGBA); ok {
		c := image.NewNRGBA(r)
		draw.Draw(c, r, m, b.Min, draw.Src)
		return pixbuf{c, c.Pix, c.Stride, 4}
	}
	c := image.NewRGBA(r)
	draw.Draw(c, r, img, b.Min, draw.Src)
	return pixbuf{c, c.Pix, c.Stride, 4}
}

// blank makes an empty w×h pixbuf of p's type.
func (p pixbuf) blank(w, h int) pixbuf {
	r := image.Rect(0, 0, w, h)
	switch p.img.(type) {
	case *image.NRGBA:
		m := image.NewNRGBA(r)
		return pixbuf{m, m.Pix, m.Stride, 4}
	case *image.NRGBA64:
		m := image.NewNRGBA64(r)
		return pixbuf{m, m.Pix, m.Stride, 8}
	case *image.RGBA64:
		m := image.NewRGBA64(r)
		return pixbuf{m, m.Pix, m.Stride, 8}
	case *image.Gray:
		m := image.NewGray(r)
		return pixbuf{m, m.Pix, m.Stride, 1}
	case *image.Gray16:
		m := image.NewGray16(r)
		return pixbuf{m, m.Pix, m.Stride, 2}
	}
	m := image.NewRGBA(r)
	return pixbuf{m, m.Pix, m.Stride, 4}
}
