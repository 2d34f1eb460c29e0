package solver

import (
	"math"
)

// The functions below reproduce the arithmetic of diffusers'
// EulerDiscreteScheduler operation by operation: float32 where it works on
// torch float32 tensors (betas, alphas_cumprod, the training σ's), float64
// where it works in numpy (interpolation, Karras σ's, σ → t). Explicit
// conversions keep every float32 intermediate rounded as torch rounds it.

// linspace32 is torch.linspace(start, end, n) in float32: the first half
// counted up from start, the second half counted down from end.
func linspace32(start, end float32, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := float32(float32(end-start) / float32(n-1))
	half := n / 2
	for i := range out {
		if i < half {
			out[i] = start + float32(step*float32(i))
		} else {
			out[i] = end - float32(step*float32(n-1-i))
		}
	}
	return out
}

// linspace64 is numpy.linspace(start, stop, n) in float64: i·step + start,
// with the last value exactly stop.
func linspace64(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(float64(i)*step) + start
	}
	out[n-1] = stop
	return out
}

// trainingBetas is the float32 beta of each training timestep.
func trainingBetas(c SchedulerConfig) []float32 {
	n := c.NumTrainTimesteps
	if c.TrainedBetas != nil {
		out := make([]float32, n)
		for i, b := range c.TrainedBetas {
			out[i] = float32(b)
		}
		return out
	}
	switch c.BetaSchedule {
	case BetasScaledLinear:
		out := linspace32(float32(math.Sqrt(c.BetaStart)), float32(math.Sqrt(c.BetaEnd)), n)
		for i, r := range out {
			out[i] = float32(r * r)
		}
		return out
	case BetasSquaredCos:
		alphaBar := func(t float64) float64 {
			v := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return v * v
		}
		out := make([]float32, n)
		for i := range out {
			t1 := float64(i) / float64(n)
			t2 := float64(i+1) / float64(n)
			out[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), 0.999))
		}
		return out
	default: // linear
		return linspace32(float32(c.BetaStart), float32(c.BetaEnd), n)
	}
}

// trainingSigmas is √((1 − ᾱ_t)/ᾱ_t) for t = 0..T−1 (ascending noise),
// with ᾱ the cumulative product of 1 − β (accumulated in float64, stored in
// float32, as libtorch's CPU cumprod does).
func trainingSigmas(betas []float32) []float32 {
	out := make([]float32, len(betas))
	acc := 1.0
	for i, b := range betas {
		acc *= float64(float32(1 - b))
		a := float32(acc)
		out[i] = float32(math.Sqrt(float64(float32(float32(1-a) / a))))
	}
	return out
}

// spacedTimesteps is the float32 timestep of each of n inference steps,
// from the noisiest, for the config's timestep_spacing.
func spacedTimesteps(c SchedulerConfig, n int) []float32 {
	T := c.NumTrainTimesteps
	switch c.TimestepSpacing {
	case SpacingLeading:
		ratio := T / n
		out := make([]float32, n)
		for i := range out {
			out[i] = float32((n-1-i)*ratio) + float32(c.StepsOffset)
		}
		return out
	case SpacingTrailing:
		// numpy.arange(T, 0, −T/n): start + i·δ with δ the first difference.
		step := -float64(T) / float64(n)
		count := int(math.Ceil((0 - float64(T)) / step))
		delta := (float64(T) + step) - float64(T)
		out := make([]float32, count)
		for i := range out {
			v := float64(T) + float64(float64(i)*delta)
			out[i] = float32(math.RoundToEven(v)) - 1
		}
		return out
	default: // linspace
		up := linspace64(0, float64(T-1), n)
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(up[n-1-i])
		}
		return out
	}
}

// interp is numpy.interp(x, [0, 1, ..., len(fp)−1], fp) in float64.
func interp(x []float32, fp []float32) []float64 {
	last := len(fp) - 1
	out := make([]float64, len(x))
	for i, xf := range x {
		v := float64(xf)
		switch {
		case v <= 0:
			out[i] = float64(fp[0])
		case v >= float64(last):
			out[i] = float64(fp[last])
		default:
			j := int(math.Floor(v))
			if float64(j) == v {
				out[i] = float64(fp[j])
				continue
			}
			slope := float64(fp[j+1]) - float64(fp[j])
			out[i] = float64(slope*(v-float64(j))) + float64(fp[j])
		}
	}
	return out
}

// sigmaToT maps σ to a fractional training timestep by linear
// interpolation of log σ over the training schedule (logSigmas ascending).
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	ls := math.Log(math.Max(sigma, 1e-10))
	low := 0
	for k, l := range logSigmas {
		if float64(l) <= ls {
			low = k
		}
	}
	low = min(low, len(logSigmas)-2)
	lo, hi := logSigmas[low], logSigmas[low+1]
	// numpy subtracts the two float32 neighbours in float32.
	w := (float64(lo) - ls) / float64(float32(lo-hi))
	w = math.Min(math.Max(w, 0), 1)
	return float64((1-w)*float64(low)) + float64(w*float64(low+1))
}

// exponentialSigmas is exp(linspace(ln σ_max, ln σ_min, n)).
func exponentialSigmas(n int, sigmaMin, sigmaMax float64) []float64 {
	out := linspace64(math.Log(sigmaMax), math.Log(sigmaMin), n)
	for i, v := range out {
		out[i] = math.Exp(v)
	}
	return out
}

// log32 is a float32 tensor's log, rounded to float32.
func log32(x float32) float32 { return float32(math.Log(float64(x))) }
