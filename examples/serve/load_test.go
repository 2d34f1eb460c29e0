package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLoad sends 64 requests from 16 clients, three rounds, to the
// service on loopback (the fixture pipeline with the student's one-step
// TTS sampler, a queue of 4 and 2 workers). Every request must end 200 or
// 503, the live-tensor count and the goroutines must come back to where
// they started, and memory must stay flat from round to round: the Go heap
// within 1 MiB, the resident set (after a trim of the native allocator)
// within 16 MiB.
// OSV_SERVE_FIGURES names a file for the report.
func TestLoad(t *testing.T) {
	s := testServer(t, []string{"-sampler", "tts", "-queue", "4", "-workers", "2"}, nil)
	url, stop, served := serveOn(t, s, 10*time.Second)
	rep, err := runLoad(context.Background(), s, url, loadSpec{
		Requests: 64, Clients: 16, Rounds: 3, Backoff: 250 * time.Millisecond, Limit: 90 * time.Second,
		Image: fixtureImage(t),
	})
	require.NoError(t, err)
	t.Logf("\n%s", rep.markdown())
	if path := os.Getenv("OSV_SERVE_FIGURES"); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(rep.markdown()), 0o644))
	}
	require.Len(t, rep.Rounds, 3)
	for i, r := range rep.Rounds {
		require.Equal(t, 64, r.ReqCount, "round %d", i+1)
		require.Zero(t, r.others(), "round %d: an answer other than 200 or 503: %s", i+1, r.OtherMsg)
		require.Equal(t, 64, r.OK+r.Busy, "round %d", i+1)
		require.Positive(t, r.OK, "round %d: some requests get through", i+1)
		require.Positive(t, r.Busy, "round %d: 16 clients against 6 places are refused some of the time", i+1)
		require.Equal(t, rep.TensorsBefore, r.Tensors, "round %d: live native tensors come back", i+1)
		require.LessOrEqual(t, r.Routines, rep.RoutinesWarm, "round %d: goroutines come back", i+1)
	}
	first, last := rep.Rounds[0], rep.Rounds[len(rep.Rounds)-1]
	require.Less(t, last.Heap-first.Heap, int64(1<<20), "the Go heap grew from %d to %d bytes", first.Heap, last.Heap)
	require.Less(t, last.RSS-first.RSS, int64(16<<20), "resident memory grew from %d to %d MiB", first.RSS>>20, last.RSS>>20)
	stop()
	require.NoError(t, <-served)
}
