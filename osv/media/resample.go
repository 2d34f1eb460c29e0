package media

import "math"

// lanczos3 is the Lanczos kernel with a = 3: sinc(x)·sinc(x/3) on |x| < 3.
func lanczos3(x float64) float64 {
	x = math.Abs(x)
	switch {
	case x >= 3:
		return 0
	case x < 1e-12:
		return 1
	}
	px := math.Pi * x
	return 3 * math.Sin(px) * math.Sin(px/3) / (px * px)
}

// taps are one output sample's filter: weights for the input samples
// start, start+1, ….
type taps struct {
	start int
	w     []float32
}

// axisTaps computes the filters that map the input interval [x0, x0+span)
// of an axis of n samples onto out samples. Output sample i sits at input
// coordinate x0 + (i+0.5)·span/out; on downscale the kernel is stretched by
// the scale factor. Taps outside [0, n) are dropped and the rest
// renormalised to sum to 1.
func axisTaps(n int, x0, span float64, out int) []taps {
	scale := span / float64(out)
	fs := math.Max(scale, 1)
	support := 3 * fs
	ts := make([]taps, out)
	for i := range ts {
		center := x0 + (float64(i)+0.5)*scale
		lo := max(int(math.Floor(center-support+0.5)), 0)
		hi := min(int(math.Floor(center+support+0.5)), n)
		ws := make([]float64, 0, max(hi-lo, 1))
		sum := 0.0
		for j := lo; j < hi; j++ {
			v := lanczos3((float64(j) + 0.5 - center) / fs)
			ws = append(ws, v)
			sum += v
		}
		if sum == 0 { // no tap reaches: take the nearest sample
			lo = min(max(int(center), 0), n-1)
			ws, sum = []float64{1}, 1
		}
		t := taps{start: lo, w: make([]float32, len(ws))}
		for k, v := range ws {
			t.w[k] = float32(v / sum)
		}
		ts[i] = t
	}
	return ts
}

// resample maps the box (x0, y0, bw, bh) of a planar RGB image src of
// sw×sh pixels onto dw×dh pixels with a separable Lanczos-3 filter:
// horizontally first, on the rows the vertical pass reads, then vertically.
func resample(src []float32, sw, sh int, x0, y0, bw, bh float64, dw, dh int) []float32 {
	tx := axisTaps(sw, x0, bw, dw)
	ty := axisTaps(sh, y0, bh, dh)
	r0, r1 := sh, 0
	for _, t := range ty {
		r0 = min(r0, t.start)
		r1 = max(r1, t.start+len(t.w))
	}
	rows := r1 - r0

	tmp := make([]float32, 3*rows*dw)
	for c := 0; c < 3; c++ {
		for y := 0; y < rows; y++ {
			in := src[(c*sh+r0+y)*sw:][:sw]
			o := tmp[(c*rows+y)*dw:][:dw]
			for i, t := range tx {
				s := float32(0)
				for k, w := range t.w {
					s += w * in[t.start+k]
				}
				o[i] = s
			}
		}
	}

	out := make([]float32, 3*dh*dw)
	for c := 0; c < 3; c++ {
		for j, t := range ty {
			o := out[(c*dh+j)*dw:][:dw]
			for k, w := range t.w {
				in := tmp[(c*rows+t.start-r0+k)*dw:][:dw]
				for i, v := range in {
					o[i] += w * v
				}
			}
		}
	}
	return out
}
