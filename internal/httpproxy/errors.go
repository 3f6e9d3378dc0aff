package httpproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
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
	case errors.As(err, new(*clientError)) && isTimeout(err):
		return 408
	case errors.As(err, new(*clientError)):
		return 400
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

// serverSide reports whether a failed copy of the response body from the
// server connection to the client was the server's doing. Spliced copies
// report one error for both ends, so the connections are asked: a server
// connection that is closed or reset failed; one that is stalled with no
// data pending while the copy timed out stalled; one with data pending
// is waiting for a client that stopped reading.
func serverSide(err error, uc *upConn) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrRespBadChunk) {
		return true
	}
	pending, closed := peekState(uc.conn)
	switch {
	case closed:
		return true
	case isTimeout(err):
		return !pending
	}
	return false
}

// clientSideBody reports whether a failed copy of the request body from the
// client to server uc was the client's doing: a malformed or oversized
// body, a client that went away, or one that stalled (nothing pending from
// it while the server still reads).
func (cc *clientConn) clientSideBody(err error, uc *upConn) bool {
	switch {
	case errors.Is(err, ErrBadChunk), errors.Is(err, ErrBodyTooLarge), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	if _, closed := peekState(uc.conn); closed {
		return false
	}
	if isTimeout(err) {
		pending, _ := peekState(cc.conn)
		return !pending
	}
	return true
}

// peekState looks at a connection without blocking: whether bytes are
// waiting to be read, and whether the peer closed or reset it.
func peekState(c net.Conn) (pending, closed bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, true
	}
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
		case err != nil || n == 0:
			closed = true
		default:
			pending = true
		}
		return true
	})
	return pending, closed
}

// clientError is a failure on the client's side of an exchange (its body
// was malformed, too large, or stopped arriving).
type clientError struct{ err error }

func (e *clientError) Error() string { return "reading request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }
