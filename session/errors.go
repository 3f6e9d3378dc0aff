package session

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the state service, as Client returns them. Classify them with
// errors.Is; an *Error carries the details.
var (
	// ErrNotFound: the id is unknown, expired or deleted (404 not_found).
	ErrNotFound = errors.New("session not found")
	// ErrLocked: the exclusive lock was not granted within the wait, or a
	// write without a lock met a holder (423 locked).
	ErrLocked = errors.New("session is locked")
	// ErrLockLost: the lock this request held was broken (it was older than
	// the service's lock_timeout) or superseded; its write was refused (409
	// lock_lost).
	ErrLockLost = errors.New("session lock was lost")
	// ErrRenewed: the id was renewed and is read-only for a short grace
	// period (409 renewed).
	ErrRenewed = errors.New("session id was renewed")
	// ErrVersionMismatch: an If-Match write met another version (412).
	ErrVersionMismatch = errors.New("session version does not match")
	// ErrTooLarge: the session is larger than the service's max_size (413).
	ErrTooLarge = errors.New("session data too large")
	// ErrUnauthorized: the bearer token is missing or wrong (401).
	ErrUnauthorized = errors.New("state service refused the token")
)

// Errors of the middleware's Session.
var (
	// ErrReadOnly is returned by the writing methods of a session loaded
	// for a read-only handler.
	ErrReadOnly = errors.New("session is read-only in this handler")
	// ErrNoSession is returned by Get when the context holds no session
	// (the handler is not behind Middleware).
	ErrNoSession = errors.New("no session in this request (is the handler behind session.Middleware?)")
)

// codes maps the service's error codes to the sentinels.
var codes = map[string]error{
	"not_found":        ErrNotFound,
	"locked":           ErrLocked,
	"lock_lost":        ErrLockLost,
	"renewed":          ErrRenewed,
	"version_mismatch": ErrVersionMismatch,
	"too_large":        ErrTooLarge,
	"unauthorized":     ErrUnauthorized,
}

// Error is a refusal from the state service: its status, its error code
// and message, and for 423 the age of the lock that was in the way.
// errors.Is(err, ErrLocked) and the like hold by code.
type Error struct {
	Op      string // what the client was doing, e.g. "locking session"
	Status  int
	Code    string
	Message string
	// LockAge is how long the lock in the way had been held (423 only).
	LockAge time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: state service answered %d %s: %s", e.Op, e.Status, e.Code, e.Message)
}

// Is reports whether the error's code is the one target stands for.
func (e *Error) Is(target error) bool {
	s, ok := codes[e.Code]
	return ok && s == target
}
