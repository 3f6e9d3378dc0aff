package state

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Store keeps sessions. Every method is atomic on its own: two calls on one
// session never interleave, whichever process or machine makes them. A store
// keeps no policy of its own; the caller passes the lifetimes and timeouts
// with each call, so one store can serve several policies and tests can use
// short ones.
//
// Times (expiry, lock age) come from the store's clock: the process clock for
// the memory and bolt stores, Redis TIME for redis, now() for postgres. So
// several service processes sharing one Redis or PostgreSQL agree on them.
//
// Expired sessions behave as deleted at once; Sweep only reclaims their room
// and counts them. Data passed in and returned is never retained or shared:
// callers may modify it.
type Store interface {
	// Create stores a new, unlocked session at version 1. id comes from
	// NewID; Create fails with ErrExists when a live session has it.
	Create(ctx context.Context, id string, data []byte, life Lifetime) (*Session, error)
	// Get returns a snapshot of the session without waiting for or taking
	// its lock, and pushes its expiry back (not for a renewed id).
	Get(ctx context.Context, id string) (*Session, error)
	// Lock takes the session's exclusive lock with a fresh lock id and
	// returns the session as it is now. A lock older than breakAfter is
	// broken and the new one granted (Session.BrokeLock); a younger one
	// makes Lock fail with a *LockedError (errors.Is ErrLocked).
	Lock(ctx context.Context, id string, breakAfter time.Duration) (*Session, error)
	// Put replaces the session's data and returns the new version. With
	// c.LockID the caller must hold that lock (else ErrLockLost) and Put
	// releases it; without, Put fails with a *LockedError while anyone holds
	// the lock. With c.Version the current version must equal it (else
	// ErrVersionMismatch).
	Put(ctx context.Context, id string, data []byte, c Cond) (uint64, error)
	// Unlock releases the lock lockID without writing; ErrLockLost when
	// that lock is no longer held.
	Unlock(ctx context.Context, id, lockID string) error
	// Touch pushes the expiry back, capped by the session's absolute
	// lifetime.
	Touch(ctx context.Context, id string) error
	// Delete removes the session (abandon), locked or not.
	Delete(ctx context.Context, id string) error
	// Renew moves the session's data and version to newID (unlocked) and
	// leaves id readable by Get, and nothing else, for grace or until it
	// would have expired anyway. Other calls on id then fail with
	// ErrRenewed. ErrExists when newID is taken.
	Renew(ctx context.Context, id, newID string, grace time.Duration) error
	// Sweep removes every expired session and returns how many sessions
	// (not renewed ids) expired.
	Sweep(ctx context.Context) (int, error)
	// Stats counts live sessions and held locks.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store's resources.
	Close() error
}

// Lifetime bounds how long a session lives.
type Lifetime struct {
	// Idle is the sliding expiry: every access pushes the expiry to now+Idle.
	Idle time.Duration
	// Max is the absolute lifetime from creation; no access extends a
	// session beyond it.
	Max time.Duration
}

// Cond is the condition a Put is made on.
type Cond struct {
	// LockID, when set, is the lock the writer holds; Put releases it.
	LockID string
	// Version, when not 0, is the version the writer last read (If-Match).
	Version uint64
}

// Session is a snapshot of one session.
type Session struct {
	ID      string
	Data    []byte
	Version uint64
	// LockID is the lock granted by Lock; empty in Get's snapshots, which
	// never reveal another holder's lock id.
	LockID string
	// Locked reports whether someone holds the lock, and LockAge for how long.
	Locked  bool
	LockAge time.Duration
	// BrokeLock reports that Lock broke an older lock to grant this one.
	BrokeLock bool
	// Renewed reports that this id was renewed: the snapshot is read-only.
	Renewed bool
	// Expires is when the session expires unless accessed again.
	Expires time.Time
}

// Stats counts what a store holds.
type Stats struct {
	Sessions int64 `json:"sessions"`
	Locked   int64 `json:"locked"`
}

// Errors a Store returns. Classify them with errors.Is; the HTTP service maps
// each to one status code (see README.md).
var (
	ErrNotFound        = errors.New("session not found")
	ErrExists          = errors.New("session id already exists")
	ErrLocked          = errors.New("session is locked")
	ErrLockLost        = errors.New("lock was broken or superseded")
	ErrVersionMismatch = errors.New("session version does not match")
	ErrRenewed         = errors.New("session id was renewed")
	ErrTooLarge        = errors.New("session data too large")
	ErrBadToken        = errors.New("token cannot be opened")
)

// LockedError is the error of a Lock or Put refused because another holder
// has the lock. errors.Is(err, ErrLocked) holds.
type LockedError struct {
	// Age is how long the lock has been held.
	Age time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("session is locked (held for %s)", e.Age.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// NewID returns a new session id: 256 bits from crypto/rand, base64url
// without padding (43 characters).
func NewID() string { return randomToken(32) }

// NewLockID returns a new lock id: 128 bits from crypto/rand, base64url.
func NewLockID() string { return randomToken(16) }

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidID reports whether id has the form NewID produces.
func ValidID(id string) bool {
	if len(id) != 43 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
