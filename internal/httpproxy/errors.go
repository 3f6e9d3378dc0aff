package httpproxy

import (
	"errors"
	"io"
	"net"
	"os"
)

// DialError is a failure to connect to a server. Nothing was sent, so the
// request may go to another server whatever its method.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "connecting to server: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Errors the forwarder decides on.
var (
	ErrNoServer    = errors.New("no server available")
	ErrNoRoute     = errors.New("no route matches")
	ErrServerQueue = errors.New("server queue full")
)

// responseTimeoutError is a server that did not answer in time.
type responseTimeoutError struct{ err error }

func (e *responseTimeoutError) Error() string { return "waiting for server response: " + e.err.Error() }
func (e *responseTimeoutError) Unwrap() error { return e.err }

// statusFor maps an error to the status the client gets. It is the one
// place where that decision is made.
func statusFor(err error) int {
	var dial *DialError
	var rto *responseTimeoutError
	switch {
	case errors.Is(err, ErrNoRoute):
		return 404
	case errors.Is(err, ErrNoServer), errors.Is(err, ErrServerQueue):
		return 503
	case errors.As(err, &rto):
		return 504
	case errors.As(err, &dial):
		return 503
	case errors.Is(err, ErrHeaderTooLarge), errors.Is(err, ErrTooManyHeaders):
		return 431
	case errors.Is(err, ErrBodyTooLarge):
		return 413
	case errors.Is(err, ErrBadVersion):
		return 505
	case errors.Is(err, ErrMethodCONNECT):
		return 501
	case isClientError(err):
		return 400
	}
	return 502
}

func isClientError(err error) bool {
	for _, e := range []error{ErrBadRequestLine, ErrBadHeader, ErrBareLF, ErrBareCR, ErrObsFold,
		ErrBadContentLen, ErrDupContentLen, ErrBadTE, ErrTEAndCL, ErrTEHTTP10, ErrMissingHost,
		ErrDupHost, ErrBadHost, ErrBadTarget, ErrBadChunk, ErrHeaderBytesBody} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isTimeout reports a deadline expiry.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// serverSide reports whether an error from a copy between the client and the
// server connection uc came from the server's side.
func serverSide(err error, uc *upConn) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrRespBadChunk) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		return op.Addr.String() == uc.conn.RemoteAddr().String()
	}
	return false
}

// clientError is a failure on the client's side of an exchange (its body
// was malformed, too large, or stopped arriving).
type clientError struct{ err error }

func (e *clientError) Error() string { return "reading request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }
