package osv_test

import (
	"fmt"

	"github.com/onestepvideo/osv-go/osv"
)

// The levels AnimateLCM-SVD's scheduler samples four steps at, and the
// scale of the first input.
func ExampleConsistencySchedule_Sigmas() {
	sc := osv.AnimateLCMSchedule()
	sigmas, err := sc.Sigmas(4)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.4g\n", sigmas)
	fmt.Printf("initial σ %.7g\n", sc.InitSigma(sigmas[0]))
	// Output:
	// [700 128.6 13.68 0.4969]
	// initial σ 700.0007
}

// OSV's one-step Time Travel Sampler: one step at σ_max, then a travel to
// the second level of the two-step schedule and a second solve.
func ExampleTTSSampler_Levels() {
	steps, travel, err := osv.TTSSampler{}.Levels(1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("step at %.4g, travel to %.4g\n", steps[0], travel[0])
	// Output:
	// step at 700, travel to 15.59
}

// A command line's -sampler and -schedule flags.
func ExampleSamplerByName() {
	for _, c := range [][2]string{{"euler", ""}, {"consistency", "animatelcm"}, {"tts", ""}, {"ddim", ""}, {"consistency", "lcm"}} {
		s, err := osv.SamplerByName(c[0], c[1])
		if err != nil {
			fmt.Println(err)
			continue
		}
		steps, _, maxG := s.Defaults()
		fmt.Printf("%T: %d steps, guidance up to %g\n", s, steps, maxG)
	}
	// Output:
	// osv.EulerSampler: 25 steps, guidance up to 3
	// osv.ConsistencySampler: 4 steps, guidance up to 1
	// osv.TTSSampler: 1 steps, guidance up to 1
	// sampler "ddim": want euler, consistency or tts
	// schedule "lcm": want osv or animatelcm
}
