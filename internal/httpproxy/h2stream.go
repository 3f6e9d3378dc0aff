package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// streamConn is one HTTP/2 stream as the HTTP/1.1 core sees it: a net.Conn
// whose reads yield the stream's request as an HTTP/1.1 head (Connection:
// close, the body framed by Content-Length or re-chunked) and then its body,
// and whose writes are parsed back into HEADERS and DATA frames on the
// stream's connection (h2conn.go). The core runs on the stream's own
// goroutine: no pipe, no goroutine per direction, no copy buffer, no
// http.Request.
type streamConn struct {
	// Kept when the streamConn is recycled for another stream: the frame
	// loop may still signal a stream that just ended (harmless: waiters
	// check their condition again), so wake is made once and never
	// written after.
	wake    chan struct{}
	headBuf []byte // backs head

	streamState
}

// streamState is what a stream starts afresh.
type streamState struct {
	c  *h2conn
	id uint32

	// Read side (the core's goroutine only).
	head    []byte // the request head still to read
	chunked bool   // re-chunk the body (its length is unknown)
	eof     bool   // the body is all read
	chunkIn [32]byte
	pending []byte // chunk framing still to read
	rdl     time.Time
	wdl     time.Time

	// Shared with the frame loop, under c.mu.
	rbuf       []byte // request body received, from roff on not yet read
	roff       int
	recvEOF    bool  // END_STREAM received
	reset      bool  // the stream ended for the client (RST_STREAM, connection gone)
	declared   int64 // the request's content-length; -1 unknown
	got        int64 // body bytes received
	recvWindow int64 // what the client may still send
	consumed   int64 // read by the core, not yet given back to the client
	sendWindow int64
	blocked    bool // waiting for a window or write buffer space
	endSent    bool // END_STREAM went out

	// Write side (the core's goroutine only).
	resp      []byte // response head bytes until complete
	started   bool   // a final response head went out
	isHead    bool   // the request is HEAD: no body
	bodyMode  int    // streamBodyIdentity, streamBodyChunked
	remaining int64  // identity with a length: bytes still due; -1 unknown
	ch        chunkState
}

// streamConns recycles streamConns with their buffers (a stream's state was
// a third of what an HTTP/2 request allocated).
var streamConns = sync.Pool{New: func() any { return &streamConn{wake: make(chan struct{}, 1)} }}

// getStreamConn returns a fresh stream id of c.
func getStreamConn(c *h2conn, id uint32, isHead bool) *streamConn {
	s := streamConns.Get().(*streamConn)
	select {
	case <-s.wake: // a signal left from the last stream
	default:
	}
	rbuf, resp, line := s.rbuf[:0], s.resp[:0], s.ch.line[:0]
	if cap(rbuf) > 64<<10 {
		rbuf = nil // an upload's buffer: not kept
	}
	s.streamState = streamState{c: c, id: id, declared: -1, recvWindow: h2StreamWindow, isHead: isHead,
		rbuf: rbuf, resp: resp, ch: chunkState{line: line}}
	return s
}

// release recycles s; the stream is over for the core and the frame loop.
func (s *streamConn) release() {
	s.c = nil
	streamConns.Put(s)
}

const (
	streamBodyIdentity = iota
	streamBodyChunked
)

// chunkState decodes the core's chunked body (well-formed: the core made
// it) incrementally across writes.
type chunkState struct {
	phase int // 0 size line, 1 data, 2 data CRLF, 3 trailer, 4 done
	left  int64
	line  []byte
}

var (
	// errStreamReset is what the core sees once the client reset the stream
	// or the connection is gone.
	errStreamReset = errors.New("http2: stream reset by the client")
)

// newStreamConn builds the core's view of the stream f opens. A status
// other than 0 means the request is not forwarded: -1 is a malformed
// request (RST_STREAM PROTOCOL_ERROR), above 0 a status to answer with.
func newStreamConn(c *h2conn, id uint32, f *http2.MetaHeadersFrame) (*streamConn, int) {
	method := f.PseudoValue("method")
	path := f.PseudoValue("path")
	authority := f.PseudoValue("authority")
	if method == "CONNECT" {
		return nil, 405 // a reverse proxy: no tunnels to anywhere
	}
	if method == "" || path == "" || f.PseudoValue("scheme") == "" || f.PseudoValue("protocol") != "" ||
		!validToken(method) || !validTarget(path) || !validTarget(authority) {
		return nil, -1
	}
	s := getStreamConn(c, id, method == "HEAD")
	h := s.headBuf[:0]
	h = append(h, method...)
	h = append(h, ' ')
	h = append(h, path...)
	h = append(h, " HTTP/1.1\r\n"...)
	if authority != "" {
		h = append(h, "Host: "...)
		h = append(h, authority...)
		h = append(h, "\r\n"...)
	}
	cookies := 0
	for _, hf := range f.RegularFields() {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return s.drop(), -1 // connection-specific: malformed in HTTP/2
		case "te":
			if hf.Value != "trailers" {
				return s.drop(), -1
			}
			continue
		case "host":
			if authority != "" {
				continue // :authority wins
			}
			if !validTarget(hf.Value) {
				return s.drop(), -1
			}
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || s.declared >= 0 && s.declared != n {
				return s.drop(), -1
			}
			s.declared = n
			continue
		case "expect":
			continue // HTTP/2 has no 100-continue handshake to pass on
		case "cookie":
			// HTTP/2 splits cookies into fields; HTTP/1.1 wants one line.
			cookies++
			if cookies > 1 {
				continue
			}
			h = append(h, "Cookie: "...)
			first := true
			for _, o := range f.RegularFields() {
				if o.Name == "cookie" {
					if !first {
						h = append(h, "; "...)
					}
					h = append(h, o.Value...)
					first = false
				}
			}
			h = append(h, "\r\n"...)
			continue
		}
		h = append(h, hf.Name...)
		h = append(h, ": "...)
		h = append(h, hf.Value...)
		h = append(h, "\r\n"...)
	}
	switch {
	case f.StreamEnded():
		s.recvEOF, s.eof = true, true
		if s.declared > 0 {
			return s.drop(), -1
		}
		if s.declared == 0 {
			h = append(h, "Content-Length: 0\r\n"...)
		}
	case s.declared >= 0:
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, s.declared, 10)
		h = append(h, "\r\n"...)
		s.eof = s.declared == 0
	default:
		h = append(h, "Transfer-Encoding: chunked\r\n"...)
		s.chunked = true
	}
	h = append(h, "Connection: close\r\n\r\n"...)
	s.head, s.headBuf = h, h
	c.mu.Lock()
	s.sendWindow = c.peerWindow
	c.mu.Unlock()
	return s, 0
}

// drop recycles the stream of a request that is not forwarded.
func (s *streamConn) drop() *streamConn {
	s.release()
	return nil
}

// validToken reports whether m is an HTTP token (a method).
func validToken(m string) bool {
	for i := 0; i < len(m); i++ {
		if b := m[i]; b <= ' ' || b >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", b) >= 0 {
			return false
		}
	}
	return m != ""
}

// validTarget reports whether v can go into a request line or Host field:
// no spaces or control bytes.
func validTarget(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

// serve runs the core for the stream and ends the stream on the wire.
func (s *streamConn) serve() {
	// Let the frame loop run first: a RST_STREAM right behind the HEADERS
	// (a rapid-reset flood) is then seen before anything is forwarded,
	// here or in the core's check before sending.
	runtime.Gosched()
	if s.Canceled() {
		return
	}
	s.c.h.ServeConn(s)
	switch {
	case s.Canceled():
	case !s.started:
		s.c.reply(s.id, 502)
	case !s.complete():
		// The core cut the response short (the server broke off): the
		// client must not take it for whole.
		s.c.resetStream(s.id, http2.ErrCodeInternal)
	default:
		s.c.mu.Lock()
		sent := s.endSent
		s.c.mu.Unlock()
		if !sent {
			s.sendData(nil, true)
		}
	}
	s.c.flush()
}

// signal wakes the stream's goroutine if it waits.
func (s *streamConn) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// waitUntil waits for a signal or the deadline.
func (s *streamConn) waitUntil(dl time.Time) error {
	if dl.IsZero() {
		<-s.wake
		return nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.wake:
		return nil
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
}

func (s *streamConn) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	if s.eof {
		return 0, io.EOF
	}
	if !s.chunked {
		n, err := s.readBody(p)
		if err == io.EOF {
			s.eof = true
		}
		return n, err
	}
	// Re-chunk: read into p past room for the size line, then frame it.
	if len(p) < 32 {
		return 0, io.ErrShortBuffer
	}
	n, err := s.readBody(p[20 : len(p)-2])
	if err != nil && err != io.EOF {
		return 0, err
	}
	if n == 0 && err == io.EOF {
		s.eof = true
		s.pending = append(s.chunkIn[:0], "0\r\n\r\n"...)
		return s.Read(p)
	}
	size := strconv.AppendInt(s.chunkIn[:0], int64(n), 16)
	size = append(size, "\r\n"...)
	// Move the data right after the size line.
	copy(p[len(size):], p[20:20+n])
	copy(p, size)
	m := len(size) + n
	p[m], p[m+1] = '\r', '\n'
	return m + 2, nil
}

// readBody reads request body data the frame loop received, giving the
// window back to the client as it goes.
func (s *streamConn) readBody(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	for s.reset || s.roff == len(s.rbuf) {
		if s.reset {
			c.mu.Unlock()
			return 0, errStreamReset
		}
		if s.recvEOF {
			c.mu.Unlock()
			return 0, io.EOF
		}
		c.mu.Unlock()
		if err := s.waitUntil(s.rdl); err != nil {
			return 0, err
		}
		c.mu.Lock()
	}
	n := copy(p, s.rbuf[s.roff:])
	s.roff += n
	if s.roff == len(s.rbuf) {
		s.rbuf, s.roff = s.rbuf[:0], 0
	}
	s.consumed += int64(n)
	c.giveBack(int64(n))
	update := !s.recvEOF && !s.reset && s.consumed >= h2StreamWindow/4
	if update {
		c.writeWindowUpdate(s.id, uint32(s.consumed))
		s.recvWindow += s.consumed
		s.consumed = 0
	}
	c.mu.Unlock()
	if update {
		c.flush()
	}
	return n, nil
}

// receive appends body data from the frame loop; c.mu is held.
func (s *streamConn) receive(data []byte) {
	if s.roff > 0 && len(s.rbuf)+len(data) > cap(s.rbuf) {
		n := copy(s.rbuf, s.rbuf[s.roff:])
		s.rbuf, s.roff = s.rbuf[:n], 0
	}
	s.rbuf = append(s.rbuf, data...)
}

// errStreamHead is a response head the bridge cannot read: only a core
// bug would produce one.
var errStreamHead = errors.New("h2: malformed response head from the core")

func (s *streamConn) Write(p []byte) (int, error) {
	n := len(p)
	for !s.started {
		buf := p
		if len(s.resp) > 0 {
			s.resp = append(s.resp, p...)
			buf = s.resp
		}
		end := bytes.Index(buf, []byte("\r\n\r\n"))
		if end < 0 {
			if len(buf) == len(p) {
				s.resp = append(s.resp, p...)
			}
			if len(s.resp) > 1<<20 {
				return 0, errStreamHead
			}
			return n, nil
		}
		if err := s.startResponse(buf[:end+2]); err != nil {
			return 0, err
		}
		// What followed the head is body (or, after an interim 1xx head,
		// the next head).
		if len(s.resp) > 0 {
			p = append([]byte(nil), buf[end+4:]...)
			s.resp = s.resp[:0]
		} else {
			p = p[end+4:]
		}
		if len(p) == 0 {
			s.c.flush()
			return n, nil
		}
	}
	err := s.writeBody(p)
	s.c.flush()
	if err != nil {
		return 0, err
	}
	return n, nil
}

// startResponse parses a response head (status line and fields, each line
// ending in CRLF) and sends it as HEADERS. A 1xx head (other than 101) goes
// out as an interim response.
func (s *streamConn) startResponse(head []byte) error {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return errStreamHead
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return errStreamHead
	}
	interim := status < 200
	if !interim {
		s.remaining = -1
		s.bodyMode = streamBodyIdentity
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.reset {
		return errStreamReset
	}
	if c.werr != nil {
		return c.werr
	}
	if status == 101 {
		return nil // no upgrades over HTTP/2
	}
	c.hpack.begin(&c.hsized)
	c.hpack.status(status)
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return errStreamHead
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFold(name, "transfer-encoding"):
			if !interim {
				s.bodyMode = streamBodyChunked
			}
			continue
		case equalFold(name, "content-length"):
			if v, err := strconv.ParseInt(string(value), 10, 64); err == nil && !interim {
				s.remaining = v
			}
		case equalFold(name, "connection"), equalFold(name, "keep-alive"), equalFold(name, "upgrade"), equalFold(name, "proxy-connection"):
			continue
		}
		c.hpack.field(name, value)
	}
	if interim {
		c.writeHeaderBlock(s.id, false)
		return nil
	}
	if s.isHead || status == 204 || status == 304 {
		s.remaining = 0
	}
	end := s.remaining == 0 && s.bodyMode == streamBodyIdentity
	c.writeHeaderBlock(s.id, end)
	s.endSent = end
	s.started = true
	return nil
}

// writeBody passes body bytes on, decoding the core's chunks.
func (s *streamConn) writeBody(p []byte) error {
	if s.bodyMode == streamBodyIdentity {
		if s.remaining >= 0 {
			if int64(len(p)) > s.remaining {
				p = p[:s.remaining]
			}
			s.remaining -= int64(len(p))
		}
		if len(p) == 0 {
			return nil
		}
		return s.sendData(p, s.remaining == 0)
	}
	ch := &s.ch
	for len(p) > 0 {
		switch ch.phase {
		case 0, 3: // a size line, or trailer lines up to the empty one
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				ch.line = append(ch.line, p...)
				p = nil
				continue
			}
			line := append(ch.line, p[:i]...)
			p = p[i+1:]
			ch.line = ch.line[:0]
			line = bytes.TrimRight(line, "\r")
			if ch.phase == 3 {
				if len(line) == 0 {
					ch.phase = 4
					if err := s.sendData(nil, true); err != nil {
						return err
					}
				}
				continue
			}
			if semi := bytes.IndexByte(line, ';'); semi >= 0 {
				line = line[:semi]
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil || size < 0 {
				return errStreamHead
			}
			if size == 0 {
				ch.phase = 3
			} else {
				ch.left, ch.phase = size, 1
			}
		case 1:
			k := min(int64(len(p)), ch.left)
			if err := s.sendData(p[:k], false); err != nil {
				return err
			}
			p = p[k:]
			if ch.left -= k; ch.left == 0 {
				ch.phase, ch.left = 2, 2
			}
		case 2:
			k := min(int64(len(p)), ch.left)
			p = p[k:]
			if ch.left -= k; ch.left == 0 {
				ch.phase = 0
			}
		case 4:
			p = nil
		}
	}
	return nil
}

// sendData queues p as DATA frames within the client's windows and the
// client's frame size, waiting (up to the write deadline) for window or
// write buffer space; end sets END_STREAM on the last frame.
func (s *streamConn) sendData(p []byte, end bool) error {
	if len(p) == 0 && !end {
		return nil
	}
	c := s.c
	for {
		c.mu.Lock()
		for {
			if s.reset {
				c.mu.Unlock()
				return errStreamReset
			}
			if c.werr != nil {
				c.mu.Unlock()
				return c.werr
			}
			if s.endSent {
				c.mu.Unlock()
				return nil
			}
			room := len(c.wbuf) < h2MaxPending
			if room && (len(p) == 0 || s.sendWindow > 0 && c.sendWindow > 0) {
				break
			}
			s.blocked = true
			c.mu.Unlock()
			c.flush() // what is queued must go before a window can open
			if err := s.waitUntil(s.wdl); err != nil {
				c.mu.Lock()
				s.blocked = false
				c.mu.Unlock()
				return err
			}
			c.mu.Lock()
			s.blocked = false
		}
		n := min(int64(len(p)), s.sendWindow, c.sendWindow, int64(c.peerMaxFrame))
		last := end && n == int64(len(p))
		var flags byte
		if last {
			flags = h2FlagEndStream
			s.endSent = true
		}
		c.writeFrame(h2Data, flags, s.id, p[:n])
		s.sendWindow -= n
		c.sendWindow -= n
		c.mu.Unlock()
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// complete reports whether a whole response went out: the core's head and,
// when its length was known, all of the body.
func (s *streamConn) complete() bool {
	if !s.started {
		return false
	}
	if s.bodyMode == streamBodyChunked {
		return s.ch.phase == 4
	}
	return s.remaining <= 0
}

// Canceled reports whether the client reset the stream.
func (s *streamConn) Canceled() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.reset
}

func (s *streamConn) Close() error         { return nil }
func (s *streamConn) LocalAddr() net.Addr  { return s.c.local }
func (s *streamConn) RemoteAddr() net.Addr { return s.c.remote }

// Deadlines bound the stream's waits for request body and for window: the
// core's client body and write timeouts hold for HTTP/2 clients too.
// Reading the head needs none (it is in memory); the connection's own
// reads and writes have the connection's deadlines.
func (s *streamConn) SetDeadline(t time.Time) error {
	s.rdl, s.wdl = t, t
	return nil
}

func (s *streamConn) SetReadDeadline(t time.Time) error {
	s.rdl = t
	return nil
}

func (s *streamConn) SetWriteDeadline(t time.Time) error {
	s.wdl = t
	return nil
}
