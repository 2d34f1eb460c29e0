// Package examples holds the example programs, one per folder: demo (a
// timed forward pass of a UNet folder) and bench (GPU benchmarks).
package examples
