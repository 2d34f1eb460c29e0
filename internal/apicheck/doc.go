// Package apicheck holds the test that keeps the module's public API usable
// from other modules: no exported identifier of a public package may name a
// type from an internal package, no exported signature may take an
// unsafe.Pointer, and only the engine (package torch) and the bridge may
// import unsafe.
package apicheck
