package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/onestepvideo/osv-go/examples/toy/world"
)

// clipChecks are the demo's per-clip measures against the clip's truth.
type clipChecks struct {
	held       float64 // share of the clip's objects found at frame 0 and in every later frame
	crisp      float64 // the worst frame's share of saturated pixels among the lit ones
	start      float64 // mean distance of the tracked frame-0 centres from the true ones (px)
	starts     int     // objects found at frame 0
	missing    []int   // per frame, how many of the objects found at frame 0 are not found in it
	background float64 // world.Background
	motion     world.Motion
}

func checkClip(wc world.Config, clip world.Clip, px []float32) clipChecks {
	c := clipChecks{missing: make([]int, wc.Frames)}
	tracks, found := wc.Track(px)
	kept := 0
	for i, o := range clip.Objects {
		k := o.Color
		if !found[k][0] {
			continue
		}
		c.start += math.Hypot(tracks[k][0][0]-clip.Tracks[i][0][0], tracks[k][0][1]-clip.Tracks[i][0][1])
		c.starts++
		all := true
		for t := range found[k] {
			all = all && found[k][t]
			if !found[k][t] {
				c.missing[t]++
			}
		}
		if all {
			kept++
		}
	}
	if len(clip.Objects) > 0 {
		c.held = float64(kept) / float64(len(clip.Objects))
	}
	if c.starts > 0 {
		c.start /= float64(c.starts)
	}
	// Crispness: of the pixels that are not background (some channel above
	// −0.75), the share whose every channel is within 0.25 of −1 or 1, in
	// the worst frame. A blurred square has a halo of grey pixels around a
	// shrunken core; a crisp one has none.
	plane := wc.Size * wc.Size
	c.crisp = 1
	for f := range wc.Frames {
		frame := px[f*3*plane : (f+1)*3*plane]
		var lit, sharp int
		for i := range plane {
			on, sat := false, true
			for ch := range 3 {
				v := float64(frame[ch*plane+i])
				on = on || v > -0.75
				sat = sat && math.Abs(math.Abs(v)-1) <= 0.25
			}
			if on {
				lit++
				if sat {
					sharp++
				}
			}
		}
		if lit > 0 {
			c.crisp = math.Min(c.crisp, float64(sharp)/float64(lit))
		}
	}
	c.background = wc.Background(px)
	c.motion = wc.MeasureMotion(px)
	return c
}

// demoReport summarises the checks over clips generated from held-out
// first frames.
type demoReport struct {
	held, crisp, start, background, speedW1, stillW1, fd, stillFD float64
	speed, smooth, trueSpeed, trueSmooth                          float64
	fdTerms                                                       []float64 // each feature's own Fréchet term (world.FeatureTerms), standardised as FD is
	starts                                                        int       // objects found at frame 0, over the clips
	missing                                                       []int     // per frame, how many of those are not found in it
}

// scoreDemo measures generated clips px against the truth of clips.
func scoreDemo(wc world.Config, clips []world.Clip, px [][]float32) (demoReport, error) {
	es := newEvalSet(wc, clips, len(clips), 5)
	got, err := es.scoreClips("generated", 1, px)
	if err != nil {
		return demoReport{}, err
	}
	still := make([][]float32, len(clips))
	for i, c := range clips {
		still[i] = holdStill(wc, c.Pixels)
	}
	ref, err := es.scoreClips("still", 0, still)
	if err != nil {
		return demoReport{}, err
	}
	rep := demoReport{crisp: 1, fdTerms: got.FDTerms, speedW1: got.SpeedW1, stillW1: ref.SpeedW1, fd: got.FD, stillFD: ref.FD,
		speed: got.Motion.Speed, smooth: got.Motion.Smoothness}
	truth := world.Summarize(es.motion)
	rep.trueSpeed, rep.trueSmooth = truth.Speed, truth.Smoothness
	n := float64(len(clips))
	for i, c := range clips {
		ch := checkClip(wc, c, px[i])
		rep.held += ch.held / n
		rep.crisp = math.Min(rep.crisp, ch.crisp)
		rep.start += ch.start * float64(ch.starts)
		rep.starts += ch.starts
		if rep.missing == nil {
			rep.missing = make([]int, len(ch.missing))
		}
		for f, m := range ch.missing {
			rep.missing[f] += m
		}
		rep.background += ch.background / n
	}
	if rep.starts > 0 {
		rep.start /= float64(rep.starts)
	} else {
		rep.start = math.Inf(1)
	}
	return rep, nil
}

func (r demoReport) String() string {
	return fmt.Sprintf("objects held in every frame %.2f, worst frame crisp %.3f, frame-0 centres off by %.2f px on average, background %.4f; speed %.2f (true %.2f), smoothness %.2f (true %.2f), speed W1 %.2f (still %.2f), FD %.1f (still %.1f)",
		r.held, r.crisp, r.start, r.background, r.speed, r.trueSpeed, r.smooth, r.trueSmooth, r.speedW1, r.stillW1, r.fd, r.stillFD)
}

// lostByFrame says, frame by frame from the second, how many of the
// objects found in the first frame are missing (frames counted from 1).
func (r demoReport) lostByFrame() string {
	var parts []string
	for _, m := range r.missing[min(1, len(r.missing)):] {
		parts = append(parts, fmt.Sprint(m))
	}
	return fmt.Sprintf("of the %d objects found in the first frame, missing in frames 2–%d: %s", r.starts, len(r.missing), strings.Join(parts, ", "))
}

// largestTerms names the n features with the largest FD terms, largest
// first, with their terms.
func (r demoReport) largestTerms(n int) string { return largestNamed(r.fdTerms, n) }

// largestNamed names the n features (world.FeatureNames) with the largest
// of terms, largest first, each with its term.
func largestNamed(terms []float64, n int) string {
	idx := make([]int, len(terms))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return terms[idx[a]] > terms[idx[b]] })
	var parts []string
	for _, j := range idx[:min(n, len(idx))] {
		name := fmt.Sprint(j)
		if j < len(world.FeatureNames) {
			name = world.FeatureNames[j]
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", name, terms[j]))
	}
	return strings.Join(parts, ", ")
}

// The demo's bounds: what "every object of the first frame stays a crisp
// square in every frame, where the conditioning put it, and moves at the
// world's speeds along smooth paths" means in numbers.
const (
	demoMinHeld        = 0.9  // mean share of objects found in every frame
	demoMinCrisp       = 0.9  // share of saturated pixels among the lit ones, in the worst frame
	demoMaxStart       = 1.0  // mean px between a tracked and a true frame-0 centre (occlusion moves a few)
	demoMaxBackground  = 0.02 // a background no brighter than this, in [0, 1]
	demoMaxExtraSmooth = 0.75 // px/frame² above the true clips' smoothness
	demoMaxW1Share     = 0.3  // speed W1 against the still video's
	demoMaxFDShare     = 0.2  // FD against the still video's
)

// failures names every check r fails.
func (r demoReport) failures() []string {
	var out failed
	check := out.check
	check(r.held >= demoMinHeld, "held")
	check(r.crisp >= demoMinCrisp, "crisp")
	check(r.start <= demoMaxStart, "start")
	check(r.background <= demoMaxBackground, "background")
	check(r.speed > 0.6*r.trueSpeed && r.speed < 1.4*r.trueSpeed, "speed")
	check(r.smooth < r.trueSmooth+demoMaxExtraSmooth, "smoothness")
	check(r.speedW1 < demoMaxW1Share*r.stillW1, "speed W1")
	check(r.fd < demoMaxFDShare*r.stillFD, "FD")
	return out
}

// failed collects the names of the checks that fail.
type failed []string

func (f *failed) check(ok bool, name string) {
	if !ok {
		*f = append(*f, name)
	}
}

// heldOutClips are the demo checks' first frames and truths.
func heldOutClips(n int) []world.Clip {
	wc := world.DefaultConfig()
	r := rand.New(rand.NewPCG(77, 0))
	clips := make([]world.Clip, n)
	for i := range clips {
		clips[i] = wc.Sample(r)
	}
	return clips
}

// failures names every check of the demo's bar one clip fails: every
// object of the first frame found in every frame, crisp, where the
// conditioning put it, on a dark background, moving at the world's speeds.
func (c clipChecks) failures(wc world.Config) []string {
	var out failed
	check := out.check
	check(c.held == 1, "held")
	check(c.crisp >= demoMinCrisp, "crisp")
	check(c.start <= demoMaxStart, "start")
	check(c.background <= demoMaxBackground, "background")
	check(c.motion.Speed > 0.6*wc.MinSpeed && c.motion.Speed < 1.4*wc.MaxSpeed, "speed")
	return out
}

func (c clipChecks) String() string {
	return fmt.Sprintf("objects kept %.2f, worst frame crisp %.3f, frame-0 centres off by %.2f px on average, background %.4f, speed %.2f, smoothness %.2f, persistence %.2f",
		c.held, c.crisp, c.start, c.background, c.motion.Speed, c.motion.Smoothness, c.motion.Persistence)
}

// barVerdict is a line saying which of the bar's checks failed.
func barVerdict(failed []string) string {
	if len(failed) == 0 {
		return "meets every check of the demo's bar"
	}
	return "fails the demo's bar on: " + strings.Join(failed, ", ")
}
