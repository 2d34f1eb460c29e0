// Package cbridge is the only cgo package of the module: a thin Go face over
// a C ABI (cbridge.h) implemented in C++ on libtorch's ATen.
//
// Every C function catches every C++ exception and returns its message; the
// Go functions here turn that message into an error in the same call. Tensor
// handles are owned by the caller and released with Free. Nothing in this
// package panics or keeps Go memory past a call.
//
// CUDA builds add fused inference kernels (kernels.cu, built by nvcc into a
// shared library that the Makefile links), which fused.cc calls where they
// apply and replaces with ATen's operators elsewhere; dist.cc holds c10d's
// process groups (Gloo, NCCL) where their headers are present.
//
// The include and library paths of libtorch come from the environment that
// the Makefile prints (`eval "$(make -s env)"`).
package cbridge
