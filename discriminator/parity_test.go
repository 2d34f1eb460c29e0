package discriminator

import (
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/internal/fixture"
	"github.com/onestepvideo/osv-go/torch"
)

// loadBackbone loads the fixture's backbone on the test device.
func loadBackbone(t *testing.T) *Backbone {
	t.Helper()
	b, err := LoadBackbone(fixture.Path("dinov2"), WithDevice(testDevice.String()))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestParityDINOv2(t *testing.T) {
	require.NoError(t, torch.SetTF32(false))
	b := loadBackbone(t)
	s := torch.NewScope()
	defer s.Close()
	ref, err := torch.LoadFile(s, fixture.Path("io", "dinov2.safetensors"), testDevice)
	require.NoError(t, err)

	var st *States
	func() {
		defer torch.Recover(&err)
		st = b.Apply(s, ref["pixel_values"])
	}()
	require.NoError(t, err)

	// Every hidden state the file holds, found from its keys.
	var layers []int
	for k := range ref {
		if i, ok := strings.CutPrefix(k, "hidden_states."); ok {
			n, err := strconv.Atoi(i)
			require.NoError(t, err, k)
			layers = append(layers, n)
		}
	}
	sort.Ints(layers)
	require.NotEmpty(t, layers)
	require.Len(t, st.HiddenStates, layers[len(layers)-1]+1)
	got := map[string]*torch.Tensor{"last_hidden_state": st.LastHiddenState, "pooler_output": st.PoolerOutput}
	for _, i := range layers {
		got["hidden_states."+strconv.Itoa(i)] = st.HiddenStates[i]
	}
	names := make([]string, 0, len(got))
	for k := range got {
		names = append(names, k)
	}
	sort.Strings(names)
	t.Logf("pixel_values %v, position grid %d×%d", ref["pixel_values"].Shape(), b.Config.GridSize(), b.Config.GridSize())
	for _, k := range names {
		want, ok := ref[k]
		require.True(t, ok, "fixture lacks %s", k)
		require.Equal(t, want.Shape(), got[k].Shape(), k)
		g, err := got[k].Float32s()
		require.NoError(t, err)
		w, err := want.Float32s()
		require.NoError(t, err)
		rel, err := fixture.RelL2(g, w)
		require.NoError(t, err)
		t.Logf("%s %v on %s: relative L2 error %.3g", k, want.Shape(), testDevice, rel)
		require.LessOrEqual(t, rel, 1e-4, k)
	}
}

func fixtureDinov2() string { return fixture.Path("dinov2") }
