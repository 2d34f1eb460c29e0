// Package examples holds the example programs, one per folder: img2vid
// (the image-to-video CLI), distill (OSV training), demo (a timed UNet
// forward checked against a fixture) and bench (GPU benchmarks).
package examples
