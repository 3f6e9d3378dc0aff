// Package tcpproxy forwards TCP connections (L4): a TCP listener's clients to
// the servers of its pool, and the byte tunnels of upgraded HTTP connections
// (WebSocket).
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const bufSize = 16 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Pipe copies bytes both ways between a and b until both directions have
// ended, and returns the byte counts. When one side finishes sending, the
// other side's write half is closed (half-close) and the opposite direction
// goes on. A tunnel with no traffic either way for idle is cut, and so is one
// whose either direction fails (a reset, say): the other direction is woken
// at once rather than left waiting for idle. Pipe closes neither connection;
// the caller does.
//
// While a direction waits for data it holds no buffer: it waits for the
// socket to become readable, then borrows one from a pool. Ten thousand idle
// tunnels cost their goroutines and nothing more.
func Pipe(a, b net.Conn, idle time.Duration) (ab, ba int64, err error) {
	t := &tunnel{a: a, b: b, idle: idle}
	t.last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	var errBA error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ba, errBA = t.pump(a, b)
	}()
	ab, err = t.pump(b, a)
	wg.Wait()
	if err == nil {
		err = errBA
	}
	return ab, ba, err
}

// tunnel is the state both directions of a Pipe share.
type tunnel struct {
	a, b   net.Conn
	idle   time.Duration
	last   atomic.Int64 // unix nanoseconds of the last byte either way
	broken atomic.Bool  // a direction failed: the other must stop too
}

// abort ends the tunnel after a failed direction: it wakes the other
// direction's read, which then sees broken and returns.
func (t *tunnel) abort() {
	t.broken.Store(true)
	t.a.SetReadDeadline(time.Unix(1, 0))
	t.b.SetReadDeadline(time.Unix(1, 0))
}

// pump copies src to dst until src ends, then half-closes dst. A failure
// aborts the tunnel; a direction ended by the other's failure returns nil.
func (t *tunnel) pump(dst, src net.Conn) (total int64, err error) {
	defer func() {
		if err != nil {
			t.abort()
		}
	}()
	for {
		// Set the deadline, then look at broken: abort sets them in the
		// other order, so either this deadline is overridden by abort's or
		// broken is already seen here.
		src.SetReadDeadline(time.Unix(0, t.last.Load()).Add(t.idle))
		if t.broken.Load() {
			return total, nil
		}
		err := WaitReadable(src)
		var n int
		if err == nil {
			bp := bufs.Get().(*[]byte)
			n, err = src.Read(*bp)
			if n > 0 {
				t.last.Store(time.Now().UnixNano())
				dst.SetWriteDeadline(time.Now().Add(t.idle))
				_, werr := dst.Write((*bp)[:n])
				total += int64(n)
				if werr != nil {
					bufs.Put(bp)
					return total, werr
				}
			}
			bufs.Put(bp)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			closeWrite(dst)
			return total, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			if t.broken.Load() {
				return total, nil
			}
			// The other direction may have been busy: the tunnel is idle
			// only when neither moved for idle.
			if time.Since(time.Unix(0, t.last.Load())) < t.idle {
				continue
			}
			return total, err
		default:
			return total, err
		}
	}
}

// closeWrite half-closes c when it supports it, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// WaitReadable blocks until c has data (or EOF) to read, honouring its read
// deadline, without reading anything. A pending socket error (a reset) is
// returned: the peek consumes it, so the read after would only see EOF.
func WaitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil // fall back to a plain read
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// The poller is edge-triggered: wait only after a peek found the
	// socket empty, or data already there would never wake us.
	var b [1]byte
	var peekErr error
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EAGAIN:
			return false
		case nil, syscall.EINTR:
		default:
			peekErr = os.NewSyscallError("recvfrom", err)
		}
		return true
	})
	if err != nil {
		return err
	}
	return peekErr
}
