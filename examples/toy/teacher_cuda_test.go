//go:build cuda

package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/unet"
)

// The teacher's step recorded as a CUDA graph trains as the same step run
// one operation at a time with the same noise (drawn on the device) and
// the same capturable optimiser: the same losses over four steps, the
// first of them the recording's warmup, and the same weights after; in
// float32 and under bfloat16 autocast.
func TestTeacherGraphMatchesEager(t *testing.T) {
	for _, autocast := range []bool{false, true} {
		t.Run(fmt.Sprintf("autocast=%v", autocast), func(t *testing.T) { teacherGraphMatchesEager(t, autocast) })
	}
}

func teacherGraphMatchesEager(t *testing.T, autocast bool) {
	wc := smallWorld
	run := func(graph bool) ([]float64, []float64) {
		u, err := unet.New(teacherUNet(wc, teacherBlocks), unet.WithDevice("cuda"), unet.WithSeed(1))
		require.NoError(t, err)
		defer u.Close()
		o := teacherOptions{Batch: 8, LR: 4e-4, PMean: -0.5, PStd: 1.4, DropCond: 0.1, Graph: graph, DeviceNoise: true, Autocast: autocast}
		tt, err := newTeacherTrainer(u, wc, o, 5)
		require.NoError(t, err)
		defer tt.close()
		tt.opt.Capturable = true
		r := rand.New(rand.NewPCG(5, 5))
		var losses []float64
		for i := range 4 {
			l, err := tt.step(drawTeacherBatch(wc, o, r), 4e-4/float64(i+1))
			require.NoError(t, err, "step %d", i+1)
			losses = append(losses, l)
		}
		require.Equal(t, graph, tt.tg != nil)
		var w []float64
		for _, p := range u.Params().List() {
			v, err := p.T.Float64s()
			require.NoError(t, err)
			w = append(w, v...)
		}
		return losses, w
	}
	eager, ew := run(false)
	graphed, gw := run(true)
	for i := range eager {
		require.InDelta(t, eager[i], graphed[i], 1e-4*math.Abs(eager[i]), "step %d: loss", i+1)
	}
	var num, den float64
	for i := range ew {
		num += (ew[i] - gw[i]) * (ew[i] - gw[i])
		den += ew[i] * ew[i]
	}
	require.Less(t, math.Sqrt(num/den), 1e-5, "the weights after four steps, relative L2")
	require.NotEqual(t, eager[0], eager[3], "the steps trained")
}
