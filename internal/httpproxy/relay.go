package httpproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
)

// relay is a WebSocket (or other upgraded) tunnel that parks: while bytes
// flow, one goroutine per direction copies them; when neither direction has
// moved for parkAfter, both goroutines end and the parker watches the two
// sockets, so an idle tunnel costs its sockets and this struct rather than
// two goroutine stacks. The first byte either way resumes it.
//
// A direction whose source ended (EOF) half-closes its destination and is
// done; the tunnel ends when both are done, on any error, or when nothing
// moved for idle (the parker's sweep enforces that while parked).
type relay struct {
	l      *live
	client net.Conn
	uc     *upConn
	idle   time.Duration
	rec    *AccessRecord // logged when the tunnel ends; nil: no access log
	start  time.Time

	last  atomic.Int64 // unix nanoseconds of the last byte either way
	stop  atomic.Bool  // the pumps of this phase must end (parking or failure)
	bytes atomic.Int64

	mu      sync.Mutex
	running int
	done    [2]bool // [0] client to server, [1] server to client
	err     error   // the first failure
	once    sync.Once
}

// relayBufs hold bytes in transit; a parked or waiting tunnel holds none.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, ioBuf); return &b }}

// activate starts a phase: a pump per direction not yet done. The calling
// goroutine runs one of them.
func (r *relay) activate() {
	r.stop.Store(false)
	r.mu.Lock()
	var dirs []int
	for d := 0; d < 2; d++ {
		if !r.done[d] {
			dirs = append(dirs, d)
		}
	}
	r.running = len(dirs)
	r.mu.Unlock()
	if len(dirs) == 0 {
		r.l.finish()
		return
	}
	for _, d := range dirs[1:] {
		go r.pump(d)
	}
	r.pump(dirs[0])
}

func (r *relay) ends(dir int) (src, dst net.Conn) {
	if dir == 0 {
		return r.client, r.uc.conn
	}
	return r.uc.conn, r.client
}

// halt makes every pump of this phase end soon: stop, then a past read
// deadline on both sources wakes a pump waiting for bytes. A pump sets its
// deadline before it looks at stop, so either it sees stop or its deadline
// is overridden here.
func (r *relay) halt() {
	r.stop.Store(true)
	r.client.SetReadDeadline(time.Unix(1, 0))
	r.uc.conn.SetReadDeadline(time.Unix(1, 0))
}

func (r *relay) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.halt()
}

// pump copies one direction until it ends, fails, or the phase stops.
func (r *relay) pump(dir int) {
	src, dst := r.ends(dir)
	defer r.exit()
	for {
		deadline := time.Unix(0, r.last.Load()).Add(r.idle)
		if p := time.Now().Add(parkAfter); !r.l.noPark && p.Before(deadline) {
			deadline = p
		}
		src.SetReadDeadline(deadline)
		if r.stop.Load() {
			return
		}
		err := tcpproxy.WaitReadable(src)
		if err == nil {
			bp := relayBufs.Get().(*[]byte)
			var n int
			n, err = src.Read(*bp)
			if n > 0 {
				r.last.Store(time.Now().UnixNano())
				r.bytes.Add(int64(n))
				dst.SetWriteDeadline(time.Now().Add(r.idle))
				if _, werr := dst.Write((*bp)[:n]); werr != nil {
					relayBufs.Put(bp)
					r.fail(werr)
					return
				}
			}
			relayBufs.Put(bp)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			r.mu.Lock()
			r.done[dir] = true
			r.mu.Unlock()
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			if r.stop.Load() {
				return
			}
			idleFor := time.Since(time.Unix(0, r.last.Load()))
			switch {
			case idleFor >= r.idle:
				r.fail(err)
				return
			case idleFor >= parkAfter && !r.l.noPark:
				r.halt() // both directions quiet: park the tunnel
				return
			}
		default:
			r.fail(err)
			return
		}
	}
}

// exit ends a pump; the last one of the phase finishes the tunnel or parks
// it.
func (r *relay) exit() {
	r.mu.Lock()
	r.running--
	last := r.running == 0
	failed := r.err != nil
	watch := uint8(0)
	if !r.done[0] {
		watch |= 1 // the client's socket
	}
	if !r.done[1] {
		watch |= 2 // the server's
	}
	r.mu.Unlock()
	if !last {
		return
	}
	if failed || watch == 0 {
		r.l.finish()
		return
	}
	r.client.SetReadDeadline(time.Time{})
	r.uc.conn.SetReadDeadline(time.Time{})
	r.l.idleUntil = time.Unix(0, r.last.Load()).Add(r.idle).UnixNano()
	if p := getParker(); p != nil && p.park(r.l, watch) {
		return
	}
	// Cannot park: go on with goroutines.
	r.l.noPark = true
	go r.activate()
}

// finished closes the server side and logs the tunnel, once, when its
// live connection is finished.
func (r *relay) finished() {
	r.once.Do(func() {
		r.uc.close()
		if r.rec != nil {
			r.rec.Bytes += r.bytes.Load()
			r.rec.Duration = time.Since(r.start)
			r.mu.Lock()
			if r.err != nil && !errors.Is(r.err, os.ErrDeadlineExceeded) && !errors.Is(r.err, net.ErrClosed) {
				r.rec.Err = r.err
			}
			r.mu.Unlock()
			r.l.h.access(r.rec)
		}
	})
}

// relayable reports whether a tunnel between these connections can park:
// both are sockets and the caller does not wait for the connection.
func relayable(l *live, client, server net.Conn) bool {
	if l == nil || l.noPark || getParker() == nil {
		return false
	}
	_, okc := client.(syscall.Conn)
	_, oks := server.(syscall.Conn)
	return okc && oks
}
