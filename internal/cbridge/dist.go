package cbridge

// #include <stdlib.h>
// #include "cbridge.h"
import "C"

import "unsafe"

// Group is a c10d process group handle.
type Group struct{ p *C.osv_group }

// Backends of a process group.
const (
	BackendGloo = 0
	BackendNCCL = 1
)

// DistBuilt reports whether the bridge was built with c10d and backend.
func DistBuilt(backend int) bool { return C.osv_dist_built(C.int(backend)) != 0 }

// DistInit joins a world of size world as rank through a TCPStore at
// addr:port (rank 0 serves it); timeoutMS bounds the rendezvous and every
// collective. NCCL groups reduce on CUDA device dev.
func DistInit(addr string, port, rank, world int, timeoutMS int64, backend, dev int) (Group, error) {
	ca := C.CString(addr)
	defer C.free(unsafe.Pointer(ca))
	var g *C.osv_group
	err := status(C.osv_dist_init(ca, C.int(port), C.int(rank), C.int(world), C.int64_t(timeoutMS),
		C.int(backend), C.int(dev), &g))
	return Group{g}, err
}

// Free leaves the group.
func (g Group) Free() { C.osv_dist_free(g.p) }

// AllReduceMean replaces each tensor with its mean over the ranks.
func (g Group) AllReduceMean(ts []Tensor) error {
	h := handles(ts)
	return status(C.osv_dist_allreduce_mean(g.p, first(h), C.int(len(h))))
}

// Broadcast copies root's tensors into every rank's.
func (g Group) Broadcast(ts []Tensor, root int) error {
	h := handles(ts)
	return status(C.osv_dist_broadcast(g.p, first(h), C.int(len(h)), C.int(root)))
}

// Barrier waits for every rank.
func (g Group) Barrier() error { return status(C.osv_dist_barrier(g.p)) }

// Reducer averages parameters' gradients over a group during the backward
// pass.
type Reducer struct{ p *C.osv_reducer }

// NewReducer hooks params (each requiring a gradient) into buckets of
// bucketBytes.
func (g Group) NewReducer(params []Tensor, bucketBytes int64) (Reducer, error) {
	h := handles(params)
	var r *C.osv_reducer
	err := status(C.osv_reducer_new(g.p, first(h), C.int(len(h)), C.int64_t(bucketBytes), &r))
	return Reducer{r}, err
}

// Arm readies the reducer for the next backward pass.
func (r Reducer) Arm() error { return status(C.osv_reducer_arm(r.p)) }

// Finish completes the averaging after the backward pass and returns how
// many buckets started during it.
func (r Reducer) Finish() (int, error) {
	var n C.int
	err := status(C.osv_reducer_finish(r.p, &n))
	return int(n), err
}

// Free removes the hooks and releases the reducer.
func (r Reducer) Free() { C.osv_reducer_free(r.p) }
