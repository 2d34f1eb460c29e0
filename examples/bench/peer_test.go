package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onestepvideo/osv-go/torch"
)

func TestAttachPeerMatchesCasesAndRatios(t *testing.T) {
	b := &bench{results: []Result{
		{Name: "unet forward b1", MedianMS: 100, MinMS: 90, MaxMS: 120, RunsMS: []float64{90, 100, 120}},
		{Name: "pipeline student 1 step consistency", MedianMS: 400},
		{Name: "pipeline student 1 step tts (2 unet calls)", MedianMS: 550},
		{Name: "vae decode 14 frames", MedianMS: 240},
		{Name: "disc fwd+bwd vae-decoded", Error: "out of memory\nmore"},
	}}
	b.attachPeer(map[string]peerCase{
		"unet forward b1":      {Name: "unet forward b1", RunsMS: []float64{210, 190, 200, 250, 199}, PeakGiB: 5},
		"pipeline 1 step":      {Name: "pipeline 1 step", RunsMS: []float64{1600}},
		"vae decode 14 frames": {Name: "vae decode 14 frames", Error: "out of memory: tried to allocate"},
	}, "diffusers eager")
	u := b.results[0]
	require.Equal(t, "diffusers eager", u.Peer)
	require.Equal(t, []float64{200, 190, 250}, []float64{u.PeerMS, u.PeerMinMS, u.PeerMaxMS})
	require.InDelta(t, 0.5, u.Ratio, 1e-12)
	s := b.results[1]
	require.Equal(t, "diffusers eager (pipeline 1 step)", s.Peer, "the one-step consistency path is timed against diffusers' one-step pipeline")
	require.InDelta(t, 0.25, s.Ratio, 1e-12)
	require.Empty(t, b.results[2].Peer, "TTS has no peer")
	require.Equal(t, "out of memory: tried to allocate", b.results[3].PeerError)
	require.Zero(t, b.results[3].Ratio)

	table := captureStdout(t, b.printTable)
	require.Contains(t, table, "100.0 (90.0–120.0)")
	require.Contains(t, table, "200.0 (190.0–250.0)")
	require.Contains(t, table, "0.50")
	require.Contains(t, table, "disc fwd+bwd vae-decoded: out of memory\n")
	require.NotContains(t, table, "more", "errors print their first line")
	require.True(t, strings.HasSuffix(strings.TrimSpace(table), "(below 1: ours is faster)"))
}

func TestPeerDTypeNames(t *testing.T) {
	require.Equal(t, "bf16", peerDType(torch.BFloat16))
	require.Equal(t, "fp16", peerDType(torch.Float16))
	require.Equal(t, "fp32", peerDType(torch.Float32))
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = w
	f()
	os.Stdout = saved
	require.NoError(t, w.Close())
	var buf bytes.Buffer
	_, err = io.Copy(&buf, r)
	require.NoError(t, err)
	return buf.String()
}
