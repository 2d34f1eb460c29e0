package torch

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Error is a failed operation: the op, the layer path where it ran (when
// known) and libtorch's message.
type Error struct {
	Path string // the checkpoint key prefix of the layer, e.g. down_blocks.1.attentions.0
	Op   string // the operation, e.g. conv2d
	Err  error
}

func (e *Error) Error() string {
	if e.Path != "" {
		return e.Path + ": " + e.Op + ": " + e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// fail panics with an *Error; Recover turns it back into an error.
func fail(op string, err error) {
	panic(&Error{Op: op, Err: err})
}

// Failf panics with an *Error made from a format, for checks inside forward
// passes.
func Failf(op, format string, args ...any) {
	fail(op, fmt.Errorf(format, args...))
}

// Annotate, deferred at the top of a layer's forward pass, records the
// layer's path on an *Error passing through that does not have one yet (the
// innermost layer names it).
func Annotate(path string) {
	if r := recover(); r != nil {
		if e, ok := r.(*Error); ok && e.Path == "" {
			e.Path = path
		}
		panic(r)
	}
}

// Recover, deferred at a public entry point, stores a panic from an
// operation into *err. Other panics (bugs) also become errors, with their
// stack, so that none crosses the public API.
func Recover(err *error) {
	r := recover()
	if r == nil {
		return
	}
	var e *Error
	if x, ok := r.(error); ok && errors.As(x, &e) {
		*err = e
		return
	}
	*err = fmt.Errorf("internal error: %v\n%s", r, debug.Stack())
}
