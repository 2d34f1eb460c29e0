package osv

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetricsLogAndPlot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.jsonl")
	l, err := OpenMetricsLog(path)
	require.NoError(t, err)
	for i := 1; i <= 20; i++ {
		require.NoError(t, l.Write(Metrics{Step: int64(i), LossG: 1 / float64(i), LossD: 2, Sigma: float64(i)}))
	}
	require.NoError(t, l.Write(map[string]any{"step": 21, "custom": 1e-5}))
	require.NoError(t, l.Close())
	require.NoError(t, l.Close())
	// A resumed run appends.
	l, err = OpenMetricsLog(path)
	require.NoError(t, err)
	require.NoError(t, l.Write(Metrics{Step: 22, LossG: 0.01}))
	require.NoError(t, l.Close())

	steps, series, err := ReadMetrics(path)
	require.NoError(t, err)
	require.Len(t, steps, 22)
	require.Equal(t, 22.0, steps[21])
	require.Equal(t, 0.25, series["loss_g"][3])
	require.True(t, math.IsNaN(series["custom"][0]), "a field missing from a record")
	require.Equal(t, 1e-5, series["custom"][20])

	svg := filepath.Join(dir, "loss.svg")
	require.NoError(t, PlotMetrics(path, svg))
	b, err := os.ReadFile(svg)
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(b, new(struct{})), "well-formed SVG")
	for _, f := range []string{"loss_g", "loss_d", "loss_dist", "loss_adv_g"} {
		require.Contains(t, string(b), ">"+f+"<")
	}
	require.Equal(t, 4, strings.Count(string(b), "<polyline"))
	require.ErrorContains(t, PlotMetrics(path, svg, "nope"), `no field "nope"`)

	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte("{\"step\": 1}\nnot json\n"), 0o644))
	_, _, err = ReadMetrics(bad)
	require.ErrorContains(t, err, "line 2")
}
