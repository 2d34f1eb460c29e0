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
