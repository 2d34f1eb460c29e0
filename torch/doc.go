// Package torch is the module's tensor engine over the libtorch bridge:
// tensor handles, scopes that release native memory deterministically, a
// live-tensor counter for leak tests, dtypes and devices, seeded random
// numbers, the operations the models need, zero-copy conversion to and from
// gotorch, and loading of safetensors checkpoints.
//
// Entry points: NewScope and Scope's operation methods (Linear, Conv,
// GroupNorm, SDPA, ...), FromFloat32 and Float32s for Go data, LoadFile and
// LoadCheckpoint for weights, ToGotorch and FromGotorch at the public
// boundary, Live for leak tests.
//
// Errors: operation methods panic with *Error, so that model code reads like
// the architecture; Recover, deferred at a public entry point, turns the panic
// back into an error, and Annotate adds the failing layer's path. Every other
// function returns an error.
//
// A Scope, and the tensors it owns, belong to one goroutine at a time.
package torch
