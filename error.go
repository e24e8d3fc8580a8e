package clusterchat

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. The value is the errno sent on the wire, so they never change.
// 1 and 2 are the classic login failures.
const (
	EAUTH        = 1  // wrong id or password, bad token
	ESESSIONS    = 2  // the account is at its session limit (-max-sessions)
	EINVALID     = 3  // malformed request: bad JSON, missing or wrongly typed field, value out of range
	ENOTFOUND    = 4  // the user, group or conversation does not exist
	EEXISTS      = 5  // already exists: name taken, already friends
	EFORBIDDEN   = 6  // not a member, not yours
	ETOOLARGE    = 7  // frame or message over the limit
	ENOTLOGGEDIN = 8  // request needs a session
	EUNAVAILABLE = 9  // the store (or another dependency) is unreachable; retry later
	EINTERNAL    = 10 // a bug
	EUNKNOWN     = 11 // unknown msgid
	ERATELIMIT   = 12 // too many attempts
)

// Error is the one error type of clusterchat: a code for machines, a message
// for people. The protocol layer maps it to an error reply.
type Error struct {
	Code    int
	Message string
	// Transient marks a failure expected to pass by itself within seconds
	// (a database restarting or failing over, a serialization conflict):
	// the same call, made again a little later, should succeed. Stores set
	// it (see IsTransient); it never reaches the wire.
	Transient bool
	// RetryAfter, on ERATELIMIT, is how long until the request may succeed
	// (native replies carry it as retry_ms; the message says it in words).
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("clusterchat: %s (errno %d)", e.Message, e.Code) }

// Errorf returns an *Error with the given code.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// RateLimited returns an ERATELIMIT error saying what was limited and when
// to try again (rounded up to a whole second in the text).
func RateLimited(retry time.Duration, what string) *Error {
	retry = max(retry, time.Millisecond)
	secs := (retry + time.Second - 1) / time.Second
	return &Error{Code: ERATELIMIT, Message: fmt.Sprintf("%s; try again in %ds", what, secs), RetryAfter: retry}
}

// RetryAfter returns the retry hint of err (0 if it has none).
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorCode returns the code of err: its own for an *Error in its chain,
// EINTERNAL for any other non-nil error, 0 for nil.
func ErrorCode(err error) int {
	var e *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	}
	return EINTERNAL
}

// IsTransient reports whether err is, or wraps, an *Error marked
// Transient: retrying the call that returned it is worth a wait. The
// server's committer retries a batch on such an error instead of refusing
// its messages.
func IsTransient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient
}

// ErrorMessage returns the message of err fit for a client: its own for an
// *Error, a generic text otherwise (internal details stay in the logs).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return "internal error"
}
