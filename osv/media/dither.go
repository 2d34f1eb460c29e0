package media

import (
	"image"
	"image/color"
)

// The nearest-colour cache is indexed by 6 bits a channel.
const cacheBits = 6

// mapper maps colours to a palette, remembering the answer per 6-bit bin
// (the nearest palette colour to the bin's centre).
type mapper struct {
	pal   color.Palette
	rgb   [][3]int32
	cache []int16
}

func newMapper(pal color.Palette) *mapper {
	m := &mapper{pal: pal, rgb: make([][3]int32, len(pal)), cache: make([]int16, 1<<(3*cacheBits))}
	for i, c := range pal {
		r, g, b, _ := c.RGBA()
		m.rgb[i] = [3]int32{int32(r >> 8), int32(g >> 8), int32(b >> 8)}
	}
	for i := range m.cache {
		m.cache[i] = -1
	}
	return m
}

// nearest returns the palette index for an 8-bit colour.
func (m *mapper) nearest(r, g, b int32) uint8 {
	const shift = 8 - cacheBits
	key := (r>>shift)<<(2*cacheBits) | (g>>shift)<<cacheBits | b>>shift
	if v := m.cache[key]; v >= 0 {
		return uint8(v)
	}
	half := int32(1) << (shift - 1)
	cr, cg, cb := r>>shift<<shift+half, g>>shift<<shift+half, b>>shift<<shift+half
	best, bestD := 0, int32(1<<30)
	for i, p := range m.rgb {
		dr, dg, db := cr-p[0], cg-p[1], cb-p[2]
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = i, d
		}
	}
	m.cache[key] = int16(best)
	return uint8(best)
}

// dither maps img to the palette with Floyd–Steinberg error diffusion
// (7/16 ahead, 3/16, 5/16 and 1/16 on the next row), scanning rows in
// alternating directions.
func (m *mapper) dither(img image.Image) *image.Paletted {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := image.NewPaletted(image.Rect(0, 0, w, h), m.pal)
	row := make([]uint16, 3*w)
	// Error rows padded by one pixel on each side.
	cur, next := make([]float32, 3*(w+2)), make([]float32, 3*(w+2))
	for y := 0; y < h; y++ {
		readRow(img, b.Min.Y+y, row)
		x0, x1, dir := 0, w, 1
		if y%2 == 1 {
			x0, x1, dir = w-1, -1, -1
		}
		for x := x0; x != x1; x += dir {
			var v [3]int32
			var e [3]float32
			for c := range 3 {
				f := min(max(float32(to8bit(row[3*x+c]))+cur[3*(x+1)+c], 0), 255)
				v[c] = int32(f + 0.5)
				e[c] = f
			}
			idx := m.nearest(v[0], v[1], v[2])
			out.Pix[y*out.Stride+x] = idx
			p := m.rgb[idx]
			for c := range 3 {
				d := e[c] - float32(p[c])
				cur[3*(x+1+dir)+c] += d * 7 / 16
				next[3*(x+1-dir)+c] += d * 3 / 16
				next[3*(x+1)+c] += d * 5 / 16
				next[3*(x+1+dir)+c] += d * 1 / 16
			}
		}
		cur, next = next, cur
		clear(next)
	}
	return out
}
