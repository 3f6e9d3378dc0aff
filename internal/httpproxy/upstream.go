package httpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// upConn is a connection to a server with its read buffer.
type upConn struct {
	conn   net.Conn
	up     *Upstream
	rd     reader
	idleAt time.Time
	reused bool
	client netip.Addr // the client a private connection speaks for

	// The liveness probe's state, made once per connection so that probing
	// allocates nothing.
	raw    syscall.RawConn
	peek   func(fd uintptr) bool
	peeked bool // the last probe found the connection readable or broken
	peekB  [1]byte

	// writeThenRead's state, likewise.
	rdl    time.Time // the read deadline last set
	xfn    func(fd uintptr) bool
	xout   []byte
	xwrote bool
	xerr   error
}

// rawConn returns the connection's socket, nil for connections without one.
func (c *upConn) rawConn() syscall.RawConn {
	if c.raw == nil {
		if sc, ok := c.conn.(syscall.Conn); ok {
			c.raw, _ = sc.SyscallConn()
		}
	}
	return c.raw
}

// errNoSocket: writeThenRead needs a socket; the caller writes and reads
// the usual way.
var errNoSocket = errors.New("no socket")

// writeThenRead writes a request that has no body and reads the first bytes
// of the response, with one deadline for both. The wait for the response is
// armed before the write (the write runs inside RawConn.Read's callback), so
// the read that would find nothing yet and only return EAGAIN is never made:
// one system call less per request. wrote reports whether the request went
// out whole.
func (c *upConn) writeThenRead(out []byte, deadline time.Time) (wrote bool, err error) {
	raw := c.rawConn()
	if raw == nil || c.rd.r != c.rd.w {
		return false, errNoSocket
	}
	if c.xfn == nil {
		c.xfn = func(fd uintptr) bool {
			if !c.xwrote {
				n, err := ignoringEINTR(func() (int, error) { return syscall.Write(int(fd), c.xout) })
				if err != nil && err != syscall.EAGAIN {
					c.xerr = err
					return true
				}
				if n = max(n, 0); n < len(c.xout) {
					// The socket buffer is full: the rest waits for room.
					if _, err := c.conn.Write(c.xout[n:]); err != nil {
						c.xerr = err
						return true
					}
				}
				c.xwrote = true
				return false // the response cannot be there yet: wait for it
			}
			rd := &c.rd
			n, err := ignoringEINTR(func() (int, error) { return syscall.Read(int(fd), rd.buf) })
			switch {
			case err == syscall.EAGAIN:
				return false
			case err != nil:
				c.xerr = err
			case n == 0:
				c.xerr = io.EOF
			default:
				rd.r, rd.w = 0, n
			}
			return true
		}
	}
	if c.rd.buf == nil {
		c.rd.get()
	}
	c.rd.r, c.rd.w = 0, 0
	c.conn.SetDeadline(deadline)
	c.rdl = deadline
	c.xout, c.xwrote, c.xerr = out, false, nil
	err = raw.Read(c.xfn)
	c.xout = nil
	if err == nil {
		err = c.xerr
	}
	return c.xwrote, err
}

// ignoringEINTR retries a system call that a signal interrupted.
func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// alive peeks at an idle connection without blocking: one that is readable
// while idle has been closed by the server, or holds bytes no request asked
// for.
func (c *upConn) alive() bool {
	if c.peek == nil {
		sc, ok := c.conn.(syscall.Conn)
		if !ok {
			return true
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		c.raw = raw
		c.peek = func(fd uintptr) bool {
			_, _, err := syscall.Recvfrom(int(fd), c.peekB[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			c.peeked = err != syscall.EAGAIN
			return true
		}
	}
	if err := c.raw.Read(c.peek); err != nil {
		return false
	}
	return !c.peeked
}

func (u *upConn) close() {
	u.conn.Close()
	u.rd.release()
}

// Upstream keeps idle keep-alive connections to one server, most recently
// used first (LIFO keeps few connections warm and lets the rest time out).
type Upstream struct {
	srv *pool.Server

	mu     sync.Mutex
	idle   []*upConn
	closed bool

	maxIdle     int
	idleTimeout time.Duration
	maxHead     int

	// slots bounds requests in flight to the server (max_conns); nil means
	// unbounded. waiting counts requests queued for a slot.
	slots    atomic.Pointer[chan struct{}]
	maxQueue atomic.Int32
	waiting  atomic.Int32
}

// UpstreamOptions tune an Upstream.
type UpstreamOptions struct {
	MaxIdle     int           // idle connections kept; 0 keeps none
	IdleTimeout time.Duration // an idle connection older than this is closed
	MaxHead     int           // largest response head accepted, bytes
	MaxConns    int           // requests in flight to the server; 0 is unbounded
	MaxQueue    int           // requests that may wait for a slot when MaxConns are busy
}

// NewUpstream returns an empty connection pool for srv.
func NewUpstream(srv *pool.Server, o UpstreamOptions) *Upstream {
	u := &Upstream{srv: srv}
	u.SetOptions(o)
	return u
}

func (u *Upstream) SetOptions(o UpstreamOptions) {
	u.mu.Lock()
	u.maxIdle, u.idleTimeout, u.maxHead = o.MaxIdle, o.IdleTimeout, o.MaxHead
	if u.maxHead <= 0 {
		u.maxHead = 64 << 10
	}
	cur := u.slots.Load()
	switch {
	case o.MaxConns <= 0:
		u.slots.Store(nil)
	case cur == nil || cap(*cur) != o.MaxConns:
		ch := make(chan struct{}, o.MaxConns)
		u.slots.Store(&ch)
	}
	u.maxQueue.Store(int32(o.MaxQueue))
	u.mu.Unlock()
}

// acquire takes a request slot, waiting up to wait in a bounded FIFO queue
// when all are busy. It returns the slot channel to release to (nil when
// unbounded) or ErrServerQueue.
func (u *Upstream) acquire(wait time.Duration) (chan struct{}, error) {
	p := u.slots.Load()
	if p == nil {
		return nil, nil
	}
	ch := *p
	select {
	case ch <- struct{}{}:
		return ch, nil
	default:
	}
	if u.waiting.Add(1) > u.maxQueue.Load() {
		u.waiting.Add(-1)
		return nil, ErrServerQueue
	}
	defer u.waiting.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case ch <- struct{}{}:
		return ch, nil
	case <-t.C:
		return nil, ErrServerQueue
	}
}

// releaseSlot gives back a slot taken by acquire.
func releaseSlot(ch chan struct{}) {
	if ch != nil {
		<-ch
	}
}

// Queued is the number of requests waiting for a slot.
func (u *Upstream) Queued() int { return int(u.waiting.Load()) }

// Server is the server this upstream connects to.
func (u *Upstream) Server() *pool.Server { return u.srv }

// idleConn returns a pooled connection, or nil when there is none.
func (u *Upstream) idleConn() *upConn {
	now := time.Now()
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			return nil
		}
		c := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		timeout := u.idleTimeout
		u.mu.Unlock()
		// Probe every reuse: a connection that is readable while idle was
		// closed by the server, or holds bytes no request asked for (a
		// confused server's late response), which must never reach the
		// next client.
		if now.Sub(c.idleAt) > timeout || !c.alive() {
			c.close()
			continue
		}
		c.reused = true
		return c
	}
}

// dial opens a new connection to the server.
func (u *Upstream) dial(ctx context.Context, d *net.Dialer) (*upConn, error) {
	return u.dialWith(ctx, d)
}

// dialWith opens a new connection with the given dialer (a source address
// for transparent mode, say).
func (u *Upstream) dialWith(ctx context.Context, d *net.Dialer) (*upConn, error) {
	nc, err := d.DialContext(ctx, "tcp", u.srv.Address())
	if err != nil {
		return nil, &DialError{Err: err}
	}
	u.mu.Lock()
	maxHead := u.maxHead
	u.mu.Unlock()
	c := &upConn{conn: nc, up: u}
	c.rd.init(nc, maxHead)
	return c, nil
}

// put returns a connection whose exchange ended cleanly, or closes it.
func (u *Upstream) put(c *upConn) {
	c.idleAt = time.Now()
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.maxIdle || c.rd.r != c.rd.w {
		u.mu.Unlock()
		c.close()
		return
	}
	u.idle = append(u.idle, c)
	u.mu.Unlock()
}

// Close closes the idle connections and keeps no more.
func (u *Upstream) Close() {
	u.mu.Lock()
	idle := u.idle
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}
