// Package examples holds the example programs, one per folder: img2vid
// (the image-to-video CLI), distill (OSV training), fvd (the Fréchet Video
// Distance of two sets of videos), demo (a timed UNet
// forward checked against a fixture), bench (GPU benchmarks), toy (OSV
// end to end at small scale) and recipe (a custom distillation recipe in a
// module of its own, built from the public packages alone; this package's
// test builds and runs it from a copy of the repository).
package examples
