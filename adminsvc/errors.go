package adminsvc

import (
	"errors"
	"fmt"
	"net/http"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Code classifies an error the way both transports need: each maps to one
// HTTP status and one gRPC code.
type Code int

// The codes. Internal errors carry a message safe to show (never a server
// path); anything that is not an *Error is Internal with "internal error".
const (
	Internal           Code = iota // 500, codes.Internal
	InvalidArgument                // 400, codes.InvalidArgument
	Unauthenticated                // 401, codes.Unauthenticated
	PermissionDenied               // 403, codes.PermissionDenied
	NotFound                       // 404, codes.NotFound
	FailedPrecondition             // 409, codes.FailedPrecondition (GC running)
	TooLarge                       // 413, codes.ResourceExhausted
	Unimplemented                  // 501, codes.Unimplemented
	Unavailable                    // 502, codes.Unavailable (identity service down)
	TooManyRequests                // 429, codes.ResourceExhausted (sign-in throttled)
	StorageFull                    // 507, codes.ResourceExhausted (the database's disk is full)
)

var httpStatus = map[Code]int{
	Internal: http.StatusInternalServerError, InvalidArgument: http.StatusBadRequest,
	Unauthenticated: http.StatusUnauthorized, PermissionDenied: http.StatusForbidden,
	NotFound: http.StatusNotFound, FailedPrecondition: http.StatusConflict,
	TooLarge: http.StatusRequestEntityTooLarge, Unimplemented: http.StatusNotImplemented,
	Unavailable: http.StatusBadGateway, TooManyRequests: http.StatusTooManyRequests,
	StorageFull: http.StatusInsufficientStorage,
}

// StorageFullMessage is what a client is told when a write failed because
// the disk (or quota) holding the database is full.
const StorageFullMessage = "registry database storage is full"

// HTTPStatus is the status /v1 answers with for c.
func (c Code) HTTPStatus() int { return httpStatus[c] }

// Error is the one error type the service returns to clients.
type Error struct {
	Message string
	// Err is the cause, logged by the transport, never shown.
	Err error
	// RetryAfter is the Retry-After value (seconds) of a TooManyRequests.
	RetryAfter string
	Code       Code
}

// RetryAfter returns the Retry-After value err carries, or "".
func RetryAfter(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return ""
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// internal wraps a cause with a message safe to show.
func internal(msg string, err error) error { return &Error{Code: Internal, Message: msg, Err: err} }

// Classify returns the code and the client-facing message of err, and
// whether err is unexpected (the transport logs those with their cause).
// A database write that failed on a full disk is StorageFull, whichever
// operation made it: the client's request was fine, the operator has to
// free space (and is told by the log line the transport writes).
func Classify(err error) (code Code, msg string, unexpected bool) {
	var e *Error
	if errors.As(err, &e) && e.Code != Internal {
		return e.Code, e.Message, false
	}
	if store.IsFull(err) {
		return StorageFull, StorageFullMessage, true
	}
	if e != nil {
		return Internal, e.Message, true
	}
	return Internal, "internal error", true
}

// Quote shortens and quotes a client-given value for a message.
func Quote(s string) string {
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	return `"` + s + `"`
}
