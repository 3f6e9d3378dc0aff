package httpproxy

import (
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
)

// Parking: a keep-alive connection that has waited parkAfter for its next
// request gives up its goroutine and its clientConn. What is left of it is a
// live (about a hundred bytes) and its socket, registered with the parker's
// epoll set; when the socket turns readable (a request, or the client
// closing), a new goroutine picks it up with a pooled clientConn. Ten
// thousand idle clients then cost their sockets, not ten thousand goroutine
// stacks and buffers.
//
// Busy connections never park: under load a connection's next request
// arrives well within parkAfter, so the request path pays no system call
// for parking (the idle read deadline it already sets is only shorter).

// parkAfter is how long a connection waits for its next request on its own
// goroutine before it is parked.
const parkAfter = 250 * time.Millisecond

// States of a live connection.
const (
	liveServing int32 = iota // a goroutine owns it
	liveWaiting              // its goroutine waits for the next request: shutdown may close it
	liveParked               // no goroutine: the parker watches it
	liveClosed               // finished, or claimed for finishing while parked
)

// live is a client connection as the handler tracks it, from accept to
// close; unlike clientConn it survives parking.
type live struct {
	h     *Handler
	conn  net.Conn
	done  func() // the caller's cleanup, once the connection is finished; nil for ServeConn
	state atomic.Int32

	// limited is the table that counted the connection (Limits.Open), to
	// uncount it at the end; peer is the address it was counted for.
	limited *limit.Table
	peer    netip.Addr

	noPark bool // ServeConn callers wait for the connection: no parking

	// Owned by the parker while parked.
	raw        syscall.RawConn
	id         uint64
	registered bool  // in the parker's epoll set (disarmed while not parked)
	idleUntil  int64 // unix nanoseconds: the keep-alive wait ends
}

// finish ends a connection that no goroutine serves any more: closes it,
// uncounts it and tells the caller.
func (l *live) finish() {
	l.state.Store(liveClosed)
	l.conn.Close()
	if l.limited != nil {
		l.limited.Close(l.peer)
	}
	l.h.untrack(l)
	if l.done != nil {
		l.done()
	}
}

// run serves l on the calling goroutine until it is finished or parked.
func (l *live) run() {
	cc := newClientConn(l.h, l.conn)
	cc.live = l
	parked := cc.serve()
	cc.release()
	if !parked {
		l.finish()
	}
}

// park hands l to the parker until its socket is readable or its keep-alive
// wait (ending at idleUntil) is over. It reports false when l cannot be
// parked; the caller then goes on waiting on its goroutine.
func (l *live) park(idleUntil time.Time) bool {
	if l.noPark {
		return false
	}
	p := getParker()
	if p == nil {
		return false
	}
	if l.raw == nil {
		sc, ok := l.conn.(syscall.Conn)
		if !ok {
			l.noPark = true
			return false
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			l.noPark = true
			return false
		}
		l.raw = raw
	}
	l.idleUntil = idleUntil.UnixNano()
	return p.park(l)
}
