// Package safetensors is a pure-Go reader and writer of the safetensors
// format: header parsing and validation, memory-mapped files, and sharded
// checkpoints described by a *.safetensors.index.json file.
//
// A safetensors file starts with an 8-byte little-endian header length N,
// followed by N bytes of JSON mapping each tensor name to its dtype, shape
// and data_offsets, plus an optional "__metadata__" object of strings. The
// offsets are relative to the first byte after the header.
package safetensors
