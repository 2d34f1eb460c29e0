//go:build cuda

package fvd

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

// In the cuda build the parity tests run on the GPU, in float32 without
// TF32 (the fixture's CUDA features were computed so too).
func init() {
	testDevice = "cuda"
	if err := torch.SetTF32(false); err != nil {
		panic(err)
	}
}

// TestFeaturesParityCUDAReference compares Go's CUDA features with the
// reference's own CUDA features, beside the CPU ones TestFeaturesParity
// checks.
func TestFeaturesParityCUDAReference(t *testing.T) {
	x := openFixture(t)
	det := loadFixtureDetector(t, x)
	for _, set := range []string{"a", "b"} {
		got, err := det.ClipFeatures(x.clips(t, set))
		require.NoError(t, err)
		e := maxAbs(t, got, x.rows(t, "features_cuda."+set))
		t.Logf("features of set %s on CUDA: max |Go − reference on CUDA| %.3g", set, e)
		require.LessOrEqual(t, e, 1e-4)
	}
}
