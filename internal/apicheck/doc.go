// Package apicheck holds the tests that keep the module's public API usable
// from other modules: no exported identifier of a public package may name a
// type from an internal package, no exported signature may take an
// unsafe.Pointer, only the engine (package torch) and the bridge may import
// unsafe, and every exported identifier of the engine (torch and
// torch/safetensors) has a doc comment that starts with its name.
package apicheck
