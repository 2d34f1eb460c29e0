// Package safetensors is a pure-Go reader and writer of the safetensors
// format: header parsing and validation, memory-mapped files, and sharded
// checkpoints described by a *.safetensors.index.json file. It holds raw
// bytes only; package torch turns them into tensors (torch.ReadTensor,
// torch.LoadFile, torch.SaveFile, torch.Params.Load).
//
// A safetensors file starts with an 8-byte little-endian header length N,
// followed by N bytes of JSON mapping each tensor name to its dtype, shape
// and data_offsets, plus an optional "__metadata__" object of strings. The
// offsets are relative to the first byte after the header.
//
// Every function returns an error, prefixed "safetensors:" and naming the
// file, for bad input (a missing, truncated or malformed file, a bad index);
// none panics on it.
package safetensors
