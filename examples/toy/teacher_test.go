package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// The fifth part's teacher is a continuation of the committed one: the
// same configuration and tensors, bfloat16, loadable as a UNet, with
// weights that moved from the committed ones by a fraction of their
// size (a teacher trained apart from it would differ by about √2).
func TestTeacherPart5ContinuesTheTeacher(t *testing.T) {
	a, err := os.ReadFile(filepath.Join("teacher", "config.json"))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join("teacher-part5", "config.json"))
	require.NoError(t, err)
	require.Equal(t, string(a), string(b), "config.json")
	u, err := unet.Load("teacher-part5")
	require.NoError(t, err)
	u.Close()

	s := torch.NewScope()
	defer s.Close()
	load := func(dir string) map[string]*torch.Tensor {
		m, err := torch.LoadFile(s, filepath.Join(dir, "diffusion_pytorch_model.safetensors"), torch.CPU)
		require.NoError(t, err, dir)
		return m
	}
	old, cur := load("teacher"), load("teacher-part5")
	require.Len(t, cur, len(old))
	for k, w := range old {
		g, ok := cur[k]
		require.True(t, ok, k)
		require.True(t, slices.Equal(w.Shape(), g.Shape()), k)
		require.Equal(t, torch.BFloat16, g.DType(), k)
	}
	rel := relativeL2(t, old, cur)
	t.Logf("part 5's weights moved from part 4's by %.4f relative L2", rel)
	require.Positive(t, rel)
	require.Less(t, rel, 0.5)
}
