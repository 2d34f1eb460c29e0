//go:build cuda

package torch

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A replay recomputes the recorded work from the inputs' current contents,
// into the same output tensor.
func TestGraphReplaysItsWork(t *testing.T) {
	dev := CUDA(0)
	x, err := Full(nil, []int64{1000}, 0, Float32, dev)
	require.NoError(t, err)
	defer x.Free()
	var y *Tensor
	calls := 0
	g, err := CaptureGraph(dev, 2, func(s *Scope) error {
		calls++
		y = s.AddScalar(s.MulScalar(x, 2), 1)
		return nil
	})
	require.NoError(t, err)
	defer g.Close()
	require.Equal(t, 3, calls, "two warmups and the recording")
	for _, v := range []float64{3, -0.5} {
		src, err := Full(nil, []int64{1000}, v, Float32, dev)
		require.NoError(t, err)
		require.NoError(t, CopyInto(x, src))
		src.Free()
		require.NoError(t, g.Replay())
		got := float64s(t, y)
		for i := range got {
			require.Equal(t, 2*v+1, got[i], "input %g, element %d", v, i)
		}
	}
	g.Close()
	require.ErrorContains(t, g.Replay(), "closed")
}

// A whole training step (loss, backward, the device clip and the capturable
// AdamW) recorded once and replayed gives what the same steps give when
// run one operation at a time: the parameters, the norms and the step
// count, with the learning rate changed between replays.
func TestGraphTrainingStepMatchesEager(t *testing.T) {
	dev := CUDA(0)
	eager, graphed := foreachParams(t, dev, 21), foreachParams(t, dev, 21)
	target, err := Full(nil, []int64{}, 0, Float32, dev)
	require.NoError(t, err)
	defer target.Free()
	newOpt := func(ps []*Tensor) *AdamW {
		o, err := NewAdamW(ps, 0.05, 0.9, 0.99, 1e-8, 0.01)
		require.NoError(t, err)
		o.Capturable = true
		return o
	}
	a, b := newOpt(eager), newOpt(graphed)
	defer a.Close()
	defer b.Close()
	// step is the recorded work: the loss Σ (i+1)·Σ (p_i − target)².
	step := func(s *Scope, ps []*Tensor, o *AdamW) (loss, norm *Tensor, err error) {
		if err := ZeroGrads(ps); err != nil {
			return nil, nil, err
		}
		for i, p := range ps {
			term := s.MulScalar(s.Sum(s.Square(s.Sub(p, target)), false), float64(i+1))
			if loss == nil {
				loss = term
			} else {
				loss = s.Add(loss, term)
			}
		}
		if err := Backward(loss); err != nil {
			return nil, nil, err
		}
		if norm, err = ClipGradNormDevice(s, ps, 1); err != nil {
			return nil, nil, err
		}
		o.SkipUnlessFinite = norm
		return loss, norm, o.Step()
	}
	var gLoss, gNorm *Tensor
	g, err := CaptureGraph(dev, 1, func(s *Scope) error {
		var err error
		gLoss, gNorm, err = step(s, graphed, b)
		return err
	})
	require.NoError(t, err)
	defer g.Close()
	s := NewScope()
	defer s.Close()
	_, _, err = step(s, eager, a) // the graph's warmup took one step
	require.NoError(t, err)
	for k := 1; k <= 5; k++ {
		lr := 0.05 / float64(k)
		require.NoError(t, a.SetLR(lr))
		require.NoError(t, b.SetLR(lr))
		tv, err := Full(nil, []int64{}, 0.2*float64(k), Float32, dev)
		require.NoError(t, err)
		require.NoError(t, CopyInto(target, tv))
		tv.Free()
		eLoss, eNorm, err := step(s, eager, a)
		require.NoError(t, err)
		require.NoError(t, g.Replay())
		for _, pair := range [][2]*Tensor{{eLoss, gLoss}, {eNorm, gNorm}} {
			x, err := pair[0].Item()
			require.NoError(t, err)
			y, err := pair[1].Item()
			require.NoError(t, err)
			require.InDelta(t, x, y, 1e-5*math.Abs(x), "replay %d", k)
		}
		for i := range eager {
			x, y := float64s(t, eager[i]), float64s(t, graphed[i])
			for j := range x {
				require.InDelta(t, x[j], y[j], 1e-5*(1+math.Abs(x[j])), "replay %d, parameter %d, value %d", k, i, j)
			}
		}
	}
	require.Equal(t, int64(6), a.Steps())
	require.Equal(t, int64(6), b.Steps(), "the replays' steps are counted on the device")
}

// A recording that fails, by the body's error or by an operation that
// cannot be recorded (a value read back to the host), is reported, and the
// device goes on working.
func TestGraphRecordingErrors(t *testing.T) {
	dev := CUDA(0)
	x, err := Full(nil, []int64{8}, 1.5, Float32, dev)
	require.NoError(t, err)
	defer x.Free()
	calls := 0
	_, err = CaptureGraph(dev, 1, func(s *Scope) error {
		calls++
		s.MulScalar(x, 3)
		if calls == 2 {
			return errors.New("no more")
		}
		return nil
	})
	require.ErrorContains(t, err, "recording: no more")
	_, err = CaptureGraph(dev, 1, func(s *Scope) error {
		_, err := s.Sum(x, false).Item()
		return err
	})
	require.ErrorContains(t, err, "graph: recording")
	s := NewScope()
	defer s.Close()
	v, err := s.Sum(s.MulScalar(x, 2), false).Item()
	require.NoError(t, err)
	require.Equal(t, 24.0, v)
}
