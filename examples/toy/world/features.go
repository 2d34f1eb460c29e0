package world

import "math"

// FeatureNames names the entries of the vector returned by
// Config.Features, in order.
var FeatureNames = []string{
	"objects",      // colours found at frame 0
	"colours_mean", // mean over frames of the number of colours found
	"fg_mean",      // mean over frames of the non-background pixel fraction
	"fg_std",       // standard deviation over frames of that fraction
	"energy_mean",  // mean over consecutive frame pairs of the mean absolute pixel difference
	"energy_std",   // standard deviation over pairs of that difference
	"speed",        // Motion.Speed
	"speed_std",    // standard deviation of the displacement lengths behind Motion.Speed
	"smoothness",   // Motion.Smoothness
	"persistence",  // Motion.Persistence
	"area_mean",    // mean over found (colour, frame) of pixel count / expected square area
	"area_std",     // standard deviation of that ratio
	"purity",       // colour-matched pixels / non-background pixels over the clip
	"red_mean",     // mean red value over the clip, in [0, 1]
	"green_mean",   // mean green value over the clip, in [0, 1]
	"blue_mean",    // mean blue value over the clip, in [0, 1]
}

// NumFeatures is the length of the vector returned by Config.Features.
const NumFeatures = 16

// expectedArea returns the mean square area Side² over the sides Sample
// draws (uniform integers in [MinSide, MaxSide]), at least 1.
func (c Config) expectedArea() float64 {
	var s float64
	n := 0
	for side := c.MinSide; side <= c.MaxSide; side++ {
		s += float64(side * side)
		n++
	}
	if n == 0 || s <= 0 {
		return 1
	}
	return s / float64(n)
}

// Features returns a fixed-length description of the appearance and motion
// of one clip (F×3×Size×Size values, as for Track), for the Fréchet
// distance. Its NumFeatures entries, named by FeatureNames, are in order:
//
//  0. the number of colours found at frame 0;
//  1. the mean over frames of the number of colours found;
//  2. the mean over frames of the fraction of non-background pixels (those
//     farther than ColorTolerance from black);
//  3. the standard deviation over frames of that fraction;
//  4. the motion energy: the mean over consecutive frame pairs of the mean
//     absolute pixel difference, in [-1, 1] units (0 for one frame);
//  5. the standard deviation over frame pairs of that difference;
//  6. Motion.Speed;
//  7. the standard deviation of the displacement lengths averaged into
//     Motion.Speed;
//  8. Motion.Smoothness;
//  9. Motion.Persistence;
//  10. the mean, over the (colour, frame) pairs where the colour is found,
//     of its pixel count divided by the expected square area (the mean of
//     Side² over the sides Sample draws);
//  11. the standard deviation of that ratio;
//  12. the colour purity: the number of pixels matched to a palette colour
//     divided by the number of non-background pixels, over the clip (0 when
//     no pixel is non-background);
//     13–15. the mean red, green and blue values over the clip, in [0, 1].
//
// Counts of colours and pixel areas are aggregated over colours, so the
// length does not depend on the number of objects.
func (c Config) Features(pixels []float32) []float64 {
	a := c.analyze(pixels)
	f := a.frames
	plane := c.Size * c.Size
	frame := 3 * plane
	feat := make([]float64, NumFeatures)

	m, steps := a.motion()
	feat[0] = float64(m.Objects)

	var colours float64
	var areas []float64
	area := c.expectedArea()
	for k := range a.found {
		for t := 0; t < f; t++ {
			if a.found[k][t] {
				colours++
				areas = append(areas, float64(a.counts[k][t])/area)
			}
		}
	}
	feat[1] = colours / float64(f)

	fg := make([]float64, f)
	var nonBg, matched int
	for t := 0; t < f; t++ {
		fg[t] = float64(a.nonBg[t]) / float64(plane)
		nonBg += a.nonBg[t]
		matched += a.matched[t]
	}
	feat[2] = mean(fg)
	feat[3] = std(fg)

	energy := make([]float64, 0, max(f-1, 0))
	for t := 1; t < f; t++ {
		prev := pixels[(t-1)*frame : t*frame]
		cur := pixels[t*frame : (t+1)*frame]
		var s float64
		for i, v := range cur {
			s += math.Abs(float64(v - prev[i]))
		}
		energy = append(energy, s/float64(frame))
	}
	feat[4] = mean(energy)
	feat[5] = std(energy)

	feat[6] = m.Speed
	feat[7] = std(steps)
	feat[8] = m.Smoothness
	feat[9] = m.Persistence
	feat[10] = mean(areas)
	feat[11] = std(areas)
	if nonBg > 0 {
		feat[12] = float64(matched) / float64(nonBg)
	}
	total := float64(f * plane)
	for ch := 0; ch < 3; ch++ {
		feat[13+ch] = a.rgbSum[ch] / total
	}
	return feat
}
