package torch

import (
	"errors"
	"fmt"
	"runtime"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Graph is CUDA work recorded once and replayed with one launch: a whole
// training step (forward, backward, gradient clip and optimiser update) or
// a model's forward pass, without the host's cost of issuing each
// operation. Make one with CaptureGraph; Close releases it.
type Graph struct {
	g     cb.Graph
	dev   Device
	scope *Scope // the tensors made while recording
}

// CaptureGraph records body's work on CUDA device dev.
//
// body is first called warmup times (at least 1) as ordinary work on the
// graph's own stream, each time with a new scope that is closed when it
// returns; then once more while recording, with a scope that the graph
// keeps. The tensors body makes in that last call (its outputs, which it
// may store in variables it shares with the caller, and the gradients a
// Backward in it leaves on the parameters) live in the graph's memory until
// Close, and every Replay rewrites them in place.
//
// What body may do while recording: operations on tensors of dev whose
// shapes are the same at every call. It must not read values back to the
// host (Item, Float32s, ClipGradNorm's returned norm), upload host data
// (FromFloat32), or draw from a CPU Generator: that work would run once,
// at recording, and not at replays. Its inputs are tensors made before
// CaptureGraph whose contents the caller replaces between replays
// (CopyInto); random numbers come from a generator of dev's own
// (NewDeviceGenerator) drawn before Replay, into such an input. AdamW
// with Capturable and ClipGradNormDevice are the optimiser and the clip
// that keep their numbers on the device.
//
// The goroutine is locked to its OS thread during the call. An error from
// body, or from libtorch (an operation that cannot be recorded), is
// returned, and no graph is made.
func CaptureGraph(dev Device, warmup int, body func(s *Scope) error) (g *Graph, err error) {
	switch {
	case !dev.CUDA:
		return nil, fmt.Errorf("graph: CUDA graphs need a CUDA device, got %v", dev)
	case warmup < 1:
		return nil, fmt.Errorf("graph: warmup must be at least 1, got %d", warmup)
	case body == nil:
		return nil, errors.New("graph: nil body")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := cb.NewGraph(dev.Index)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	if err := cb.GraphEnter(h); err != nil {
		cb.FreeGraph(h)
		return nil, fmt.Errorf("graph: %w", err)
	}
	g = &Graph{g: h, dev: dev, scope: NewScope()}
	recording := false
	defer func() {
		if recording {
			_ = cb.GraphEnd(h, true)
		}
		if lerr := cb.GraphLeave(h); lerr != nil && err == nil {
			err = fmt.Errorf("graph: %w", lerr)
		}
		if err != nil {
			g.Close()
			g = nil
		}
	}()
	for i := range warmup {
		if err := callBody(body, NewScope(), true); err != nil {
			return nil, fmt.Errorf("graph: warmup %d: %w", i+1, err)
		}
	}
	if err := cb.GraphBegin(h); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	recording = true
	if err := callBody(body, g.scope, false); err != nil {
		return nil, fmt.Errorf("graph: recording: %w", err)
	}
	recording = false
	if err := cb.GraphEnd(h, false); err != nil {
		return nil, fmt.Errorf("graph: recording: %w", err)
	}
	return g, nil
}

// callBody runs body with s, turning a panic with *Error into an error;
// with closeAfter, s is closed when body returns.
func callBody(body func(*Scope) error, s *Scope, closeAfter bool) (err error) {
	defer Recover(&err)
	if closeAfter {
		defer s.Close()
	}
	return body(s)
}

// Replay runs the recorded work again, on the calling thread's current
// stream of the graph's device (after the work issued there before it).
// A closed graph is an error.
func (g *Graph) Replay() error {
	if g == nil || g.scope == nil {
		return errors.New("graph: replay of a closed graph")
	}
	if err := cb.GraphReplay(g.g); err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	return nil
}

// Device is the graph's CUDA device.
func (g *Graph) Device() Device { return g.dev }

// Close releases the graph and the tensors made while recording (tensors
// derived from them elsewhere keep their storage). It is safe to call twice
// and on nil.
func (g *Graph) Close() {
	if g == nil || g.scope == nil {
		return
	}
	g.scope.Close()
	g.scope = nil
	cb.FreeGraph(g.g)
}
