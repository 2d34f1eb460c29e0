package cbridge

// #include "cbridge.h"
import "C"

// Graph is a CUDA graph with a side stream of its own.
type Graph struct{ p *C.osv_graph }

// NewGraph makes an empty graph for CUDA device dev.
func NewGraph(dev int) (Graph, error) {
	var out *C.osv_graph
	err := status(C.osv_graph_new(C.int(dev), &out))
	return Graph{out}, err
}

// GraphEnter makes g's side stream current on the calling thread, once
// the device's earlier work is done.
func GraphEnter(g Graph) error { return status(C.osv_graph_enter(g.p)) }

// GraphLeave waits for g's side stream and restores the thread's stream.
func GraphLeave(g Graph) error { return status(C.osv_graph_leave(g.p)) }

// GraphBegin starts recording the side stream's work.
func GraphBegin(g Graph) error { return status(C.osv_graph_begin(g.p)) }

// GraphEnd stops recording; with abort, the recording is discarded.
func GraphEnd(g Graph, abort bool) error {
	a := 0
	if abort {
		a = 1
	}
	return status(C.osv_graph_end(g.p, C.int(a)))
}

// GraphReplay launches the recorded work on the thread's current stream.
func GraphReplay(g Graph) error { return status(C.osv_graph_replay(g.p)) }

// FreeGraph releases g.
func FreeGraph(g Graph) { C.osv_graph_free(g.p) }
