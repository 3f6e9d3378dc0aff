package httpproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// streamConn is one HTTP/2 stream as the HTTP/1.1 core sees it: a net.Conn
// whose reads yield the stream's request as an HTTP/1.1 head (Connection:
// close, the body framed by Content-Length or re-chunked) and then its body,
// and whose writes are parsed back into a response on the stream's
// ResponseWriter. The core runs on the stream's own goroutine: no pipe, no
// goroutine per direction, no copy buffer, no serializing the request with
// net/http and parsing the response back with it.
type streamConn struct {
	w      http.ResponseWriter
	r      *http.Request
	remote net.Addr
	local  net.Addr

	// Read side.
	head    []byte // the request head still to read
	body    io.Reader
	chunked bool // re-chunk body (its length is unknown)
	eof     bool
	chunkIn [32]byte
	pending []byte // chunk framing still to read

	// Write side.
	resp      []byte // response head bytes until complete
	started   bool   // WriteHeader was called
	isHead    bool   // the request is HEAD: no body
	bodyMode  int    // bodyIdentity, bodyChunkedIn
	remaining int64  // identity with a length: bytes still due; -1 unknown
	ch        chunkState
	flusher   http.Flusher
	rc        *http.ResponseController // deadlines on the stream
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

var streamHeads = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// newStreamConn builds the core's view of stream r.
func newStreamConn(w http.ResponseWriter, r *http.Request, remote, local net.Addr) *streamConn {
	c := &streamConn{w: w, r: r, remote: remote, local: local, isHead: r.Method == http.MethodHead}
	c.flusher, _ = w.(http.Flusher)
	c.rc = http.NewResponseController(w)
	bp := streamHeads.Get().(*[]byte)
	h := (*bp)[:0]
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	h = append(h, r.Method...)
	h = append(h, ' ')
	h = append(h, uri...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, r.Host...)
	h = append(h, "\r\n"...)
	for k, vs := range r.Header {
		switch k {
		case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Expect", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te":
			// Framing and hop-by-hop fields are the bridge's to set; HTTP/2
			// handles 100-continue itself.
			continue
		}
		for _, v := range vs {
			h = append(h, k...)
			h = append(h, ": "...)
			h = append(h, v...)
			h = append(h, "\r\n"...)
		}
	}
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		c.eof = true
	case r.ContentLength > 0:
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, r.ContentLength, 10)
		h = append(h, "\r\n"...)
		c.body = r.Body
	default:
		h = append(h, "Transfer-Encoding: chunked\r\n"...)
		c.body, c.chunked = r.Body, true
	}
	h = append(h, "Connection: close\r\n\r\n"...)
	c.head = h
	*bp = h
	c.resp = (*streamHeads.Get().(*[]byte))[:0]
	return c
}

// release returns the head buffers.
func (c *streamConn) release() {
	h := c.head[:0]
	streamHeads.Put(&h)
	rb := c.resp[:0]
	streamHeads.Put(&rb)
	c.head, c.resp = nil, nil
}

func (c *streamConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.eof {
		return 0, io.EOF
	}
	if !c.chunked {
		n, err := c.body.Read(p)
		if err == io.EOF {
			c.eof = true
		}
		return n, err
	}
	// Re-chunk: read into p past room for the size line, then frame it.
	if len(p) < 32 {
		return 0, io.ErrShortBuffer
	}
	n, err := c.body.Read(p[20 : len(p)-2])
	if err != nil && err != io.EOF {
		return 0, err
	}
	if n == 0 && err == io.EOF {
		c.eof = true
		c.pending = append(c.chunkIn[:0], "0\r\n\r\n"...)
		return c.Read(p)
	}
	size := strconv.AppendInt(c.chunkIn[:0], int64(n), 16)
	size = append(size, "\r\n"...)
	// Move the data right after the size line.
	copy(p[len(size):], p[20:20+n])
	copy(p, size)
	m := len(size) + n
	p[m], p[m+1] = '\r', '\n'
	if err == io.EOF {
		c.eof = true
		c.pending = append(c.chunkIn[:0], "0\r\n\r\n"...)
	}
	return m + 2, nil
}

// errStreamHead is a response head the bridge cannot read: only a core
// bug would produce one.
var errStreamHead = errors.New("h2 bridge: malformed response head from the core")

func (c *streamConn) Write(p []byte) (int, error) {
	n := len(p)
	for !c.started {
		buf := p
		if len(c.resp) > 0 {
			c.resp = append(c.resp, p...)
			buf = c.resp
		}
		end := bytes.Index(buf, []byte("\r\n\r\n"))
		if end < 0 {
			if len(buf) == len(p) {
				c.resp = append(c.resp, p...)
			}
			if len(c.resp) > 1<<20 {
				return 0, errStreamHead
			}
			return n, nil
		}
		interim, err := c.startResponse(buf[:end+2])
		if err != nil {
			return 0, err
		}
		// What followed the head is body (or, after an interim 1xx head,
		// the next head).
		if len(c.resp) > 0 {
			p = append([]byte(nil), buf[end+4:]...)
			c.resp = c.resp[:0]
		} else {
			p = p[end+4:]
		}
		if interim {
			continue
		}
		if len(p) == 0 {
			return n, nil
		}
	}
	if err := c.writeBody(p); err != nil {
		return 0, err
	}
	return n, nil
}

// startResponse parses a response head (status line and fields, each line
// ending in CRLF) and starts the stream's response. interim reports a 1xx
// head, which HTTP/2 has no use for here: dropped.
func (c *streamConn) startResponse(head []byte) (interim bool, err error) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return false, errStreamHead
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return false, errStreamHead
	}
	if status < 200 {
		return true, nil
	}
	hdr := c.w.Header()
	c.remaining = -1
	c.bodyMode = streamBodyIdentity
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return false, errStreamHead
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFold(name, "transfer-encoding"):
			c.bodyMode = streamBodyChunked
			continue
		case equalFold(name, "content-length"):
			if v, err := strconv.ParseInt(string(value), 10, 64); err == nil {
				c.remaining = v
			}
		case equalFold(name, "connection"), equalFold(name, "keep-alive"), equalFold(name, "upgrade"), equalFold(name, "proxy-connection"):
			continue
		}
		k := http.CanonicalHeaderKey(string(name))
		hdr[k] = append(hdr[k], string(value))
	}
	if c.isHead || status == 204 || status == 304 {
		c.remaining = 0
	}
	c.started = true
	c.w.WriteHeader(status)
	return false, nil
}

// writeBody passes body bytes on, decoding the core's chunks.
func (c *streamConn) writeBody(p []byte) error {
	if c.bodyMode == streamBodyIdentity {
		if c.remaining >= 0 {
			if int64(len(p)) > c.remaining {
				p = p[:c.remaining]
			}
			c.remaining -= int64(len(p))
		}
		if len(p) == 0 {
			return nil
		}
		if _, err := c.w.Write(p); err != nil {
			return err
		}
		if c.remaining != 0 && c.flusher != nil {
			c.flusher.Flush() // more to come: let what is here go
		}
		return nil
	}
	ch := &c.ch
	wrote := false
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
			if _, err := c.w.Write(p[:k]); err != nil {
				return err
			}
			wrote = true
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
	if wrote && ch.phase != 4 && c.flusher != nil {
		c.flusher.Flush()
	}
	return nil
}

// complete reports whether a whole response went out: the core's head and,
// when its length was known, all of the body.
func (c *streamConn) complete() bool {
	if !c.started {
		return false
	}
	if c.bodyMode == streamBodyChunked {
		return c.ch.phase == 4
	}
	return c.remaining <= 0
}

// Canceled reports whether the client reset the stream.
func (c *streamConn) Canceled() bool { return c.r.Context().Err() != nil }

func (c *streamConn) Close() error         { return nil }
func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// Deadlines reach the stream through its ResponseController: the core's
// client body and write timeouts hold for HTTP/2 clients too. Reading the
// head needs none (it is in memory).
func (c *streamConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	if c.eof || c.body == nil {
		return nil
	}
	return c.rc.SetReadDeadline(t)
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	return c.rc.SetWriteDeadline(t)
}
