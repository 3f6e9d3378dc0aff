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

	// tun is set once the connection is a tunnel (WebSocket): it owns the
	// server side and is what a wake-up resumes.
	tun atomic.Pointer[relay]

	// Owned by the parker while parked: the sockets it may watch (the
	// client's; a tunnel's server side too) and when the wait ends.
	socks     [2]parkSock
	nsocks    int
	idleUntil int64 // unix nanoseconds: the keep-alive or tunnel idle wait ends
}

// parkSock is one socket the parker may watch for a live connection.
type parkSock struct {
	raw        syscall.RawConn
	id         uint64
	registered bool // in the parker's epoll set (disarmed while not parked)
}

// addSock makes c watchable; false when it has no socket (TLS, pipes).
func (l *live) addSock(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	l.socks[l.nsocks] = parkSock{raw: raw}
	l.nsocks++
	return true
}

// finish ends a connection that no goroutine serves any more: closes it,
// uncounts it and tells the caller.
func (l *live) finish() {
	l.state.Store(liveClosed)
	l.conn.Close()
	if r := l.tun.Load(); r != nil {
		r.finished()
	}
	if l.limited != nil {
		l.limited.Close(l.peer)
	}
	l.h.untrack(l)
	if l.done != nil {
		l.done()
	}
}

// resume continues l after the parker woke it.
func (l *live) resume() {
	if r := l.tun.Load(); r != nil {
		r.activate()
		return
	}
	l.run()
}

// run serves l on the calling goroutine until it is finished or parked.
func (l *live) run() {
	cc := newClientConn(l.h, l.conn)
	cc.live = l
	handedOff := cc.serve()
	cc.release()
	switch {
	case !handedOff:
		l.finish()
	case l.tun.Load() != nil && l.state.Load() == liveServing:
		// A new relay: start it on fresh goroutines, leaving this one
		// (and the stack the request path grew) to end.
		go l.tun.Load().activate()
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
	if l.nsocks == 0 && !l.addSock(l.conn) {
		l.noPark = true
		return false
	}
	l.idleUntil = idleUntil.UnixNano()
	return p.park(l, 1)
}
