package media

import (
	"image"
	"image/color"
)

// Colours are binned 5 bits a channel for the median cut.
const (
	binBits = 5
	binSide = 1 << binBits
)

// histogram counts colours in 5-bit bins and sums their 8-bit values, so
// that a box's colour is the mean of the pixels in it.
type histogram struct {
	count []int
	sum   [][3]int64
}

func binIndex(r, g, b int) int {
	return r<<(2*binBits) | g<<binBits | b
}

func newHistogram(frames []image.Image) *histogram {
	hs := &histogram{count: make([]int, binSide*binSide*binSide), sum: make([][3]int64, binSide*binSide*binSide)}
	for _, f := range frames {
		b := f.Bounds()
		row := make([]uint16, 3*b.Dx())
		for y := b.Min.Y; y < b.Max.Y; y++ {
			readRow(f, y, row)
			for x := 0; x < b.Dx(); x++ {
				r, g, bl := to8bit(row[3*x]), to8bit(row[3*x+1]), to8bit(row[3*x+2])
				i := binIndex(int(r>>(8-binBits)), int(g>>(8-binBits)), int(bl>>(8-binBits)))
				hs.count[i]++
				hs.sum[i][0] += int64(r)
				hs.sum[i][1] += int64(g)
				hs.sum[i][2] += int64(bl)
			}
		}
	}
	return hs
}

// box is an axis-aligned set of bins, bounds inclusive, and its pixel count.
type box struct {
	lo, hi [3]int
	count  int
}

// each calls fn for every bin index in the box.
func (bx *box) each(fn func(i int)) {
	for r := bx.lo[0]; r <= bx.hi[0]; r++ {
		for g := bx.lo[1]; g <= bx.hi[1]; g++ {
			for b := bx.lo[2]; b <= bx.hi[2]; b++ {
				fn(binIndex(r, g, b))
			}
		}
	}
}

// shrink tightens the box's bounds to its non-empty bins and recounts it.
func (hs *histogram) shrink(bx *box) {
	lo, hi := [3]int{binSide, binSide, binSide}, [3]int{-1, -1, -1}
	bx.count = 0
	bx.each(func(i int) {
		if hs.count[i] == 0 {
			return
		}
		bx.count += hs.count[i]
		c := [3]int{i >> (2 * binBits), i >> binBits & (binSide - 1), i & (binSide - 1)}
		for a := range c {
			lo[a], hi[a] = min(lo[a], c[a]), max(hi[a], c[a])
		}
	})
	bx.lo, bx.hi = lo, hi
}

// longest returns the box's longest axis and its extent in bins.
func (bx *box) longest() (axis, extent int) {
	for a := range 3 {
		if e := bx.hi[a] - bx.lo[a]; e > extent {
			axis, extent = a, e
		}
	}
	return axis, extent
}

// split cuts the box across its longest axis where half its pixels lie on
// either side; both halves keep at least one non-empty bin.
func (hs *histogram) split(bx *box) (box, box) {
	axis, _ := bx.longest()
	slice := make([]int, binSide)
	bx.each(func(i int) {
		c := [3]int{i >> (2 * binBits), i >> binBits & (binSide - 1), i & (binSide - 1)}
		slice[c[axis]] += hs.count[i]
	})
	cut, acc := bx.lo[axis], 0
	for ; cut < bx.hi[axis]-1; cut++ {
		acc += slice[cut]
		if 2*acc >= bx.count {
			break
		}
	}
	a, b := *bx, *bx
	a.hi[axis], b.lo[axis] = cut, cut+1
	hs.shrink(&a)
	hs.shrink(&b)
	return a, b
}

// medianCut returns at most n colours for the pixels of frames: the
// histogram's bins are split into boxes, each time cutting the box with the
// largest pixel count × extent at its median, and each box gives the mean
// colour of its pixels.
func medianCut(frames []image.Image, n int) color.Palette {
	hs := newHistogram(frames)
	root := box{hi: [3]int{binSide - 1, binSide - 1, binSide - 1}}
	hs.shrink(&root)
	boxes := []box{root}
	for len(boxes) < n {
		best, score := -1, 0
		for i := range boxes {
			_, e := boxes[i].longest()
			if s := boxes[i].count * e; e > 0 && s > score {
				best, score = i, s
			}
		}
		if best < 0 {
			break
		}
		a, b := hs.split(&boxes[best])
		boxes[best] = a
		boxes = append(boxes, b)
	}
	pal := make(color.Palette, 0, len(boxes))
	for i := range boxes {
		var s [3]int64
		cnt := int64(0)
		boxes[i].each(func(j int) {
			cnt += int64(hs.count[j])
			for a := range s {
				s[a] += hs.sum[j][a]
			}
		})
		if cnt == 0 {
			continue
		}
		pal = append(pal, color.RGBA{uint8((s[0] + cnt/2) / cnt), uint8((s[1] + cnt/2) / cnt), uint8((s[2] + cnt/2) / cnt), 0xff})
	}
	return pal
}
