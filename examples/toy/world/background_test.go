package world

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// A clean clip has a black background; a grey haze or noise over the
// frame raises the level by what was added.
func TestBackground(t *testing.T) {
	c := DefaultConfig()
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		clip := c.Sample(r)
		require.Zero(t, c.Background(clip.Pixels))
	}
	clip := c.Sample(r)
	haze := make([]float32, len(clip.Pixels))
	for i, v := range clip.Pixels {
		haze[i] = v
		if v == -1 {
			haze[i] = -1 + 2*0.1 // level 0.1
		}
	}
	require.InDelta(t, 0.1, c.Background(haze), 1e-6)
	noisy := addNoise(rand.New(rand.NewPCG(5, 6)), clip.Pixels, 0.5)
	// Gaussian noise of deviation 0.5 on −1, clamped: the level is
	// max(0, z/4), whose mean is 0.4/4 ≈ 0.1.
	b := c.Background(noisy)
	require.Greater(t, b, 0.05)
	require.Less(t, b, 0.15)
}
