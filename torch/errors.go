package torch

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Error is a failed operation: the op, the layer path where it ran (when
// known) and libtorch's message. It is the value the Scope operation
// methods panic with, and what Recover stores; errors.As finds it in the
// error chain.
type Error struct {
	Path string // the checkpoint key prefix of the layer, e.g. down_blocks.1.attentions.0
	Op   string // the operation, e.g. conv2d
	Err  error  // the cause: libtorch's message, or the engine's own check
}

// Error formats the error as "path: op: cause", without the path when it
// is not known.
func (e *Error) Error() string {
	msg := "unknown error"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Path != "" {
		return e.Path + ": " + e.Op + ": " + msg
	}
	return e.Op + ": " + msg
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// errReleased is the cause reported for a nil or released tensor argument.
var errReleased = errors.New("use of a released or nil tensor")

// fail panics with an *Error; Recover turns it back into an error.
func fail(op string, err error) {
	panic(&Error{Op: op, Err: err})
}

// Failf panics with an *Error for op, its cause made from a format: the
// check a layer's forward pass makes before any kernel runs (a shape or a
// configuration). Call it only where a Recover is deferred above.
func Failf(op, format string, args ...any) {
	fail(op, fmt.Errorf(format, args...))
}

// Annotate, deferred at the top of a layer's forward pass, records the
// layer's path on an *Error passing through that does not have one yet (so
// the innermost layer names it), then lets the panic continue. It does
// nothing when there is no panic.
func Annotate(path string) {
	if r := recover(); r != nil {
		if e, ok := r.(*Error); ok && e.Path == "" {
			e.Path = path
		}
		panic(r)
	}
}

// Recover, deferred at a public entry point (defer torch.Recover(&err)),
// stores a panic from an operation into *err, which must not be nil: an
// *Error as it is, so that errors.As finds it. Other panics (bugs) also
// become errors, with their stack, so that none crosses the public API. It
// does nothing when there is no panic.
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
