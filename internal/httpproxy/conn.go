package httpproxy

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// reader is a growable read buffer over a connection. Unlike bufio.Reader it
// exposes its buffer, so heads are parsed in place without copies.
type reader struct {
	conn net.Conn
	buf  []byte
	bp   *[]byte // the pooled buffer buf is, nil when buf is not pooled
	r, w int
	max  int // the buffer never grows past this

	// For fillIdle: the socket and a read function made once per
	// connection, so that waiting allocates nothing.
	raw     syscall.RawConn
	rawRead func(fd uintptr) bool
	rawN    int
	rawErr  error
}

const (
	smallBuf = 4 << 10
	ioBuf    = 32 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}

func (b *reader) init(c net.Conn, max int) {
	b.conn, b.max, b.r, b.w = c, max, 0, 0
	if b.buf == nil {
		b.get()
	}
}

// get takes a small buffer from the pool.
func (b *reader) get() {
	b.bp = bufPool.Get().(*[]byte)
	b.buf, b.r, b.w = *b.bp, 0, 0
}

// put returns a pooled buffer to the pool; a grown one is left to the GC.
func (b *reader) put() {
	if b.bp != nil {
		bufPool.Put(b.bp)
	}
	b.bp, b.buf = nil, nil
}

// release returns the buffer to the pool.
func (b *reader) release() {
	b.put()
	b.conn = nil
}

func (b *reader) buffered() []byte { return b.buf[b.r:b.w] }
func (b *reader) discard(n int) {
	b.r += n
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
}

// errFull means the buffer is at its limit and holds no complete head.
var errFull = io.ErrShortBuffer

// fill reads at least one more byte, compacting or growing the buffer. It
// returns errFull when the buffer already holds max unread bytes.
func (b *reader) fill() error {
	if err := b.room(); err != nil {
		return err
	}
	n, err := b.conn.Read(b.buf[b.w:])
	b.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// room makes room after b.w for at least one byte, compacting or growing
// the buffer; errFull when it already holds max unread bytes.
func (b *reader) room() error {
	if b.buf == nil {
		b.get()
	}
	if b.w < len(b.buf) {
		return nil
	}
	if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
		return nil
	}
	if len(b.buf) >= b.max {
		return errFull
	}
	n := min(2*len(b.buf), b.max)
	nb := make([]byte, n)
	copy(nb, b.buf[:b.w])
	b.put()
	b.buf = nb
	return nil
}

// readFD is fill for serveInline, inside RawConn.Read: one read(2) on the
// socket fd. short reports that the read left room in the buffer, so the
// socket had nothing more at that moment.
func (b *reader) readFD(fd uintptr) (short bool, err error) {
	if err := b.room(); err != nil {
		return false, err
	}
	space := len(b.buf) - b.w
	n, err := syscall.Read(int(fd), b.buf[b.w:])
	switch {
	case err != nil:
		return false, err
	case n == 0:
		return false, io.EOF
	}
	b.w += n
	return n < space, nil
}

// rawConn returns the connection's socket, or nil (TLS, pipes).
func (b *reader) rawConn() syscall.RawConn {
	if b.raw == nil {
		if sc, ok := b.conn.(syscall.Conn); ok {
			b.raw, _ = sc.SyscallConn()
		}
	}
	return b.raw
}

// fillIdle is fill for a connection waiting for its next request, with
// nothing buffered: while the socket has nothing to read the buffer goes
// back to the pool, so an idle keep-alive connection holds no buffer. It
// costs no system call more than fill: the read is tried first, and only an
// EAGAIN parks the goroutine (and releases the buffer).
func (b *reader) fillIdle() error {
	if b.r != b.w {
		return b.fill()
	}
	if b.rawRead == nil {
		sc, ok := b.conn.(syscall.Conn)
		if !ok {
			return b.fill() // TLS and pipes: keep the buffer
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return b.fill()
		}
		b.raw = raw
		b.rawRead = func(fd uintptr) bool {
			if b.buf == nil {
				b.get()
			}
			b.r, b.w = 0, 0
			b.rawN, b.rawErr = syscall.Read(int(fd), b.buf)
			if b.rawErr == syscall.EAGAIN {
				if b.bp != nil {
					b.put() // wait for readability without a buffer
				}
				return false
			}
			return true
		}
	}
	if err := b.raw.Read(b.rawRead); err != nil {
		return err // a deadline, or the connection closed
	}
	switch {
	case b.rawErr != nil:
		return b.rawErr
	case b.rawN <= 0:
		return io.EOF
	}
	b.w = b.rawN
	return nil
}

// Read lets the reader serve as an io.Reader that drains the buffer first.
func (b *reader) Read(p []byte) (int, error) {
	if b.r < b.w {
		n := copy(p, b.buf[b.r:b.w])
		b.discard(n)
		return n, nil
	}
	return b.conn.Read(p)
}

// readLine returns the next line (without its LF, with any CR) once it is
// buffered, filling as needed; lines longer than the buffer are errors.
func (b *reader) readLine() ([]byte, error) {
	from := b.r
	for {
		for i := from; i < b.w; i++ {
			if b.buf[i] == '\n' {
				line := b.buf[b.r:i]
				b.r = i + 1
				return line, nil
			}
		}
		from = b.w - b.r
		if err := b.fill(); err != nil {
			return nil, err
		}
		from += b.r
	}
}
