package keyring

import "errors"

// ErrInvalid is the error every token failure wraps: a caller that only needs
// "this token is no good, treat it as absent" tests errors.Is(err, ErrInvalid).
// The more specific errors below say why, for logs and metrics.
var ErrInvalid error = &tokenError{msg: "invalid token"}

// Token errors returned by Open. Each wraps ErrInvalid.
var (
	// ErrMalformed: not a token of a version this package reads (bad
	// base64url, too short, unknown version or flags).
	ErrMalformed error = &tokenError{msg: "malformed token"}

	// ErrTampered: the token failed authentication. It was modified, cut, or
	// sealed for another purpose, or by another ring whose key id happens to
	// match. A wrong purpose is reported as ErrTampered; see ErrWrongPurpose.
	ErrTampered error = &tokenError{msg: "token failed authentication"}

	// ErrUnknownKey: the token names a key id the ring does not hold (sealed
	// by another ring, or by a key dropped after it expired).
	ErrUnknownKey error = &tokenError{msg: "token sealed with a key not in the ring"}

	// ErrKeyExpired: the token is authentic but its key has expired. Only
	// returned while the expired key is still in the ring (Rotate drops it).
	ErrKeyExpired error = &tokenError{msg: "token sealed with an expired key"}

	// ErrTokenExpired: the token is authentic but was sealed by SealTTL and
	// its time to live has passed.
	ErrTokenExpired error = &tokenError{msg: "token expired"}

	// ErrWrongPurpose is never returned by Open for version 1 tokens. A token
	// does not carry its purpose (the purpose selects the key and is bound as
	// additional data), so a token opened under the wrong purpose cannot be
	// told apart from a tampered one without either revealing the purpose or
	// adding a second, purpose-independent tag to every token. Open reports
	// ErrTampered instead. The value exists so callers can write
	// errors.Is(err, ErrWrongPurpose) today and keep working if a later token
	// version can tell the two apart at no cost.
	ErrWrongPurpose error = &tokenError{msg: "token sealed for another purpose"}
)

// ErrNoActiveKey is returned by Seal, SealTTL and Derive when no key in the
// ring is active at the ring's current time (every key is still pending or
// has expired, or the Ring is the zero value). It does not wrap ErrInvalid: it
// is a problem with the ring, not with a token.
var ErrNoActiveKey = errors.New("keyring: no active key")

// errEmptyPurpose is a programming error, not a token error.
var errEmptyPurpose = errors.New("keyring: purpose must not be empty")

// tokenError is the type of the token errors; all but ErrInvalid unwrap to
// ErrInvalid.
type tokenError struct{ msg string }

func (e *tokenError) Error() string { return "keyring: " + e.msg }

func (e *tokenError) Unwrap() error {
	if e == ErrInvalid {
		return nil
	}
	return ErrInvalid
}
