// Package examples holds the example programs, one per folder: img2vid
// (the image-to-video CLI), demo (a timed UNet forward checked against a
// fixture) and bench (GPU benchmarks).
package examples
