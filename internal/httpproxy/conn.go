package httpproxy

import (
	"io"
	"net"
	"sync"
)

// reader is a growable read buffer over a connection. Unlike bufio.Reader it
// exposes its buffer, so heads are parsed in place without copies.
type reader struct {
	conn net.Conn
	buf  []byte
	r, w int
	max  int // the buffer never grows past this
}

const (
	smallBuf = 4 << 10
	ioBuf    = 32 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}

func (b *reader) init(c net.Conn, max int) {
	b.conn, b.max, b.r, b.w = c, max, 0, 0
	if b.buf == nil {
		b.buf = *bufPool.Get().(*[]byte)
	}
}

// release returns the buffer to the pool.
func (b *reader) release() {
	if b.buf != nil && cap(b.buf) == smallBuf {
		buf := b.buf[:smallBuf]
		bufPool.Put(&buf)
	}
	b.buf, b.conn = nil, nil
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
	if b.w == len(b.buf) {
		if b.r > 0 {
			b.w = copy(b.buf, b.buf[b.r:b.w])
			b.r = 0
		} else {
			if len(b.buf) >= b.max {
				return errFull
			}
			n := 2 * len(b.buf)
			if n > b.max {
				n = b.max
			}
			nb := make([]byte, n)
			copy(nb, b.buf[:b.w])
			if cap(b.buf) == smallBuf {
				old := b.buf[:smallBuf]
				bufPool.Put(&old)
			}
			b.buf = nb
		}
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
