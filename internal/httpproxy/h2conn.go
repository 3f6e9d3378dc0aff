package httpproxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn is one HTTP/2 connection (RFC 9113), served by fulcrum's own frame
// loop rather than golang.org/x/net/http2's server: that server costs a
// goroutine hop and an http.Request per stream and a TLS record per frame,
// three times HAProxy's CPU per request. Frames are read with x/net's Framer
// (frame parsing, HPACK decoding, CONTINUATION and header-list limits); every
// frame fulcrum sends is encoded here into one write buffer, which whoever
// finds it non-empty and nobody writing flushes in one TLS write. Streams
// finishing together therefore share records and system calls.
//
// Each stream runs the HTTP/1.1 core on a goroutine of its own through a
// streamConn (h2stream.go), like a client connection that carries exactly
// one request.
type h2conn struct {
	sw     *H2Switch
	h      *Handler
	conn   net.Conn
	br     *bufio.Reader
	fr     *http2.Framer
	remote net.Addr
	local  net.Addr
	nread  int64 // bytes the framer consumed (a timeout between frames is harmless)
	idle   time.Duration
	rdl    time.Time // the read deadline set on conn

	kick chan struct{} // wakes the writer (cap 1)
	stop chan struct{} // ends the writer

	mu         sync.Mutex // all below
	flushed    sync.Cond  // a flush ended
	wbuf       []byte     // frames not yet written
	spare      []byte     // the other write buffer, while the flusher writes one
	flushing   bool
	werr       error // the connection can no longer be written
	wdl        time.Time
	hpack      hpackBlock             // the header block being built
	hsized     bool                   // the dynamic table size was set to 0
	streams    map[uint32]*streamConn // open or half-closed streams
	running    int                    // stream goroutines not finished
	lastID     uint32                 // highest stream a client opened
	refused    int                    // streams refused for concurrency
	lastActive time.Time              // when a stream last ended
	goaway     bool                   // GOAWAY sent: no new streams
	peerGone   bool                   // the client sent GOAWAY or closed
	drained    chan struct{}          // closed when running drops to 0 after the read loop ended

	peerMaxFrame uint32 // the client's SETTINGS_MAX_FRAME_SIZE
	peerWindow   int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	sendWindow   int64  // connection-level send window
	recvWindow   int64  // connection-level bytes the client may still send
	recvConsumed int64  // connection-level bytes consumed, not yet returned
}

const (
	h2MaxStreams   = 250
	h2StreamWindow = 256 << 10 // what a client may send on a stream before the core reads it
	h2ConnWindow   = 1 << 20   // the same for the whole connection
	h2MaxPending   = 256 << 10 // write buffer size at which writers wait for the flush
	h2MaxRefused   = 1000      // refused streams before ENHANCE_YOUR_CALM
	h2Preface      = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// HTTP/2 frame types and flags written here.
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2Ping         = 0x6
	h2GoAway       = 0x7
	h2WindowUpdate = 0x8
	h2Continuation = 0x9

	h2FlagEndStream  = 0x1
	h2FlagAck        = 0x1
	h2FlagEndHeaders = 0x4
)

// countingReader counts what the framer consumed.
type countingReader struct {
	r *bufio.Reader
	n *int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	*r.n += int64(n)
	return n, err
}

func newH2Conn(sw *H2Switch, c net.Conn) *h2conn {
	cfg := sw.h.cfg.Load()
	hc := &h2conn{
		sw: sw, h: sw.h, conn: c, remote: c.RemoteAddr(), local: c.LocalAddr(),
		br:           bufio.NewReaderSize(c, 16<<10),
		idle:         cfg.ClientIdle,
		streams:      make(map[uint32]*streamConn),
		peerMaxFrame: 16384,
		peerWindow:   65535,
		sendWindow:   65535,
		recvWindow:   h2ConnWindow,
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	hc.flushed.L = &hc.mu
	if hc.idle <= 0 {
		hc.idle = 60 * time.Second
	}
	hc.fr = http2.NewFramer(nil, countingReader{hc.br, &hc.nread})
	hc.fr.SetReuseFrames()
	hc.fr.SetMaxReadFrameSize(16384) // the default; fulcrum does not raise it
	hc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	maxHeader := cfg.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = 64 << 10
	}
	hc.fr.MaxHeaderListSize = uint32(maxHeader)
	return hc
}

// serve reads frames until the connection ends, then waits for its streams.
func (c *h2conn) serve() {
	defer c.finish()
	cfg := c.h.cfg.Load()
	head := cfg.ClientHeader
	if head <= 0 {
		head = 10 * time.Second
	}
	c.conn.SetReadDeadline(time.Now().Add(head))
	var pre [len(h2Preface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != h2Preface {
		return
	}
	c.mu.Lock()
	c.writeSettings()
	c.writeWindowUpdate(0, h2ConnWindow-65535)
	c.mu.Unlock()
	go c.writeLoop()
	c.flush()

	first := true
	for {
		before := c.nread
		f, err := c.fr.ReadFrame()
		if err != nil {
			if c.readError(err, before) {
				continue
			}
			return
		}
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				c.fail(http2.ErrCodeProtocol)
				return
			}
			first = false
			c.refreshReadDeadline(time.Now())
		}
		var code http2.ErrCode
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			code = c.onHeaders(f)
		case *http2.DataFrame:
			code = c.onData(f)
		case *http2.RSTStreamFrame:
			code = c.onReset(f)
		case *http2.SettingsFrame:
			code = c.onSettings(f)
		case *http2.WindowUpdateFrame:
			code = c.onWindowUpdate(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				c.mu.Lock()
				c.writeFrame(h2Ping, h2FlagAck, 0, f.Data[:])
				c.mu.Unlock()
				c.flush()
			}
		case *http2.GoAwayFrame:
			c.mu.Lock()
			c.peerGone = true
			c.mu.Unlock()
		case *http2.PriorityFrame:
			if f.StreamDep == f.StreamID {
				c.resetStream(f.StreamID, http2.ErrCodeProtocol)
			}
		case *http2.PushPromiseFrame:
			code = http2.ErrCodeProtocol
		}
		if code != http2.ErrCodeNo {
			c.fail(code)
			return
		}
	}
}

// readError handles an error from the framer; true means read on.
func (c *h2conn) readError(err error, before int64) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		c.mu.Lock()
		if se.StreamID > c.lastID && se.StreamID%2 == 1 {
			c.lastID = se.StreamID // a bad HEADERS still used its id
		}
		c.mu.Unlock()
		c.resetStream(se.StreamID, se.Code)
		return true
	case errors.As(err, &ce):
		c.fail(http2.ErrCode(ce))
		return false
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.fail(http2.ErrCodeFrameSize)
		return false
	case errors.Is(err, os.ErrDeadlineExceeded) && c.nread == before:
		// Between frames. With streams running, or a stream that ended
		// recently, the connection is not idle yet.
		now := time.Now()
		c.mu.Lock()
		busy := c.running > 0 || now.Sub(c.lastActive) < c.idle
		c.mu.Unlock()
		if busy {
			c.refreshReadDeadline(now)
			return true
		}
		c.shutdown() // idle: GOAWAY, and the connection closes
		return false
	}
	return false
}

// refreshReadDeadline keeps the read deadline at least idle/2 away, setting
// it only when it has come closer than that: one system-call-free timer
// update per idle/2, not per frame.
func (c *h2conn) refreshReadDeadline(now time.Time) {
	if c.rdl.Sub(now) < c.idle/2 {
		c.rdl = now.Add(c.idle)
		c.conn.SetReadDeadline(c.rdl)
	}
}

// onHeaders opens a stream (or takes its trailers).
func (c *h2conn) onHeaders(f *http2.MetaHeadersFrame) http2.ErrCode {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ErrCodeProtocol
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		c.resetStream(id, http2.ErrCodeProtocol)
		return http2.ErrCodeNo
	}
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		// Trailers: they end the body; fulcrum does not forward them.
		if s.recvEOF {
			c.mu.Unlock()
			c.resetStream(id, http2.ErrCodeStreamClosed)
			return http2.ErrCodeNo
		}
		if !f.StreamEnded() {
			c.mu.Unlock()
			return http2.ErrCodeProtocol
		}
		s.recvEOF = true
		bad := s.declared >= 0 && s.declared != s.got
		c.mu.Unlock()
		if bad {
			c.resetStream(id, http2.ErrCodeProtocol)
			return http2.ErrCodeNo
		}
		s.signal()
		return http2.ErrCodeNo
	}
	if id <= c.lastID {
		c.mu.Unlock()
		return http2.ErrCodeStreamClosed
	}
	c.lastID = id
	if c.goaway || c.peerGone {
		c.mu.Unlock()
		return http2.ErrCodeNo // after GOAWAY: not processed
	}
	if c.running >= h2MaxStreams {
		c.refused++
		calm := c.refused > h2MaxRefused
		c.mu.Unlock()
		if calm {
			return http2.ErrCodeEnhanceYourCalm
		}
		c.resetStream(id, http2.ErrCodeRefusedStream)
		return http2.ErrCodeNo
	}
	c.mu.Unlock()
	if f.Truncated {
		c.reply(id, 431)
		return http2.ErrCodeNo
	}
	s, status := newStreamConn(c, id, f)
	if status != 0 {
		if status < 0 {
			c.resetStream(id, http2.ErrCodeProtocol)
		} else {
			c.reply(id, status)
		}
		return http2.ErrCodeNo
	}
	c.mu.Lock()
	c.streams[id] = s
	c.running++
	c.mu.Unlock()
	c.sw.streams.Run(s)
	return http2.ErrCodeNo
}

// onData takes request body data.
func (c *h2conn) onData(f *http2.DataFrame) http2.ErrCode {
	id := f.StreamID
	n := int64(f.Header().Length) // padding counts against the windows
	c.mu.Lock()
	if n > c.recvWindow {
		c.mu.Unlock()
		return http2.ErrCodeFlowControl
	}
	c.recvWindow -= n
	s := c.streams[id]
	if s == nil || s.recvEOF || s.reset {
		// Not for a stream that takes data: return the window at once.
		c.giveBack(n)
		idle := id > c.lastID
		c.mu.Unlock()
		if idle {
			return http2.ErrCodeProtocol
		}
		c.resetStream(id, http2.ErrCodeStreamClosed)
		return http2.ErrCodeNo
	}
	if n > s.recvWindow {
		c.giveBack(n)
		c.mu.Unlock()
		c.resetStream(id, http2.ErrCodeFlowControl)
		return http2.ErrCodeNo
	}
	s.recvWindow -= n
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		c.giveBack(pad)
		s.consumed += pad
	}
	got := s.got + int64(len(data))
	bad := s.declared >= 0 && (got > s.declared || f.StreamEnded() && got != s.declared)
	if bad {
		// Never passed on: the core must not forward a body cut to fit.
		c.giveBack(int64(len(data)))
	} else {
		s.receive(data)
		s.got = got
		s.recvEOF = f.StreamEnded()
	}
	c.mu.Unlock()
	if bad {
		c.resetStream(id, http2.ErrCodeProtocol)
		return http2.ErrCodeNo
	}
	s.signal()
	c.flush() // window updates given back
	return http2.ErrCodeNo
}

// giveBack returns n bytes of connection window, in updates of at least a
// quarter of it. c.mu is held.
func (c *h2conn) giveBack(n int64) {
	c.recvConsumed += n
	if c.recvConsumed >= h2ConnWindow/4 {
		c.writeWindowUpdate(0, uint32(c.recvConsumed))
		c.recvWindow += c.recvConsumed
		c.recvConsumed = 0
	}
}

func (c *h2conn) onReset(f *http2.RSTStreamFrame) http2.ErrCode {
	c.mu.Lock()
	if f.StreamID > c.lastID {
		c.mu.Unlock()
		return http2.ErrCodeProtocol // an idle stream
	}
	s := c.streams[f.StreamID]
	if s != nil {
		s.reset = true
		delete(c.streams, f.StreamID)
	}
	c.mu.Unlock()
	if s != nil {
		s.signal()
	}
	return http2.ErrCodeNo
}

func (c *h2conn) onSettings(f *http2.SettingsFrame) http2.ErrCode {
	if f.IsAck() {
		return http2.ErrCodeNo
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		if ce, ok := err.(http2.ConnectionError); ok {
			return http2.ErrCode(ce)
		}
		return http2.ErrCodeProtocol
	}
	c.mu.Lock()
	var code http2.ErrCode
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > 1<<31-1 {
					code = http2.ErrCodeFlowControl
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		}
		return nil
	})
	c.writeFrame(h2Settings, h2FlagAck, 0, nil)
	c.mu.Unlock()
	c.wakeAll()
	c.flush()
	return code
}

func (c *h2conn) onWindowUpdate(f *http2.WindowUpdateFrame) http2.ErrCode {
	inc := int64(f.Increment)
	c.mu.Lock()
	if f.StreamID == 0 {
		c.sendWindow += inc
		over := c.sendWindow > 1<<31-1
		c.mu.Unlock()
		if over {
			return http2.ErrCodeFlowControl
		}
		c.wakeAll()
		return http2.ErrCodeNo
	}
	if f.StreamID > c.lastID {
		c.mu.Unlock()
		return http2.ErrCodeProtocol
	}
	s := c.streams[f.StreamID]
	if s == nil {
		c.mu.Unlock()
		return http2.ErrCodeNo // closed: ignored
	}
	s.sendWindow += inc
	over := s.sendWindow > 1<<31-1
	c.mu.Unlock()
	if over {
		c.resetStream(f.StreamID, http2.ErrCodeFlowControl)
		return http2.ErrCodeNo
	}
	s.signal()
	return http2.ErrCodeNo
}

// wakeAll wakes every stream (windows or buffer space changed).
func (c *h2conn) wakeAll() {
	c.mu.Lock()
	for _, s := range c.streams {
		s.signal()
	}
	c.mu.Unlock()
}

// resetStream sends RST_STREAM and ends the stream for the core.
func (c *h2conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	s := c.streams[id]
	if s != nil {
		s.reset = true
		delete(c.streams, id)
	}
	c.writeRST(id, code)
	c.mu.Unlock()
	if s != nil {
		s.signal()
	}
	c.flush()
}

// reply answers a stream fulcrum does not forward with a bare status.
func (c *h2conn) reply(id uint32, status int) {
	c.mu.Lock()
	c.hpack.begin(&c.hsized)
	c.hpack.status(status)
	c.hpack.field([]byte("content-length"), []byte("0"))
	c.writeHeaderBlock(id, true)
	c.mu.Unlock()
	c.flush()
}

// runStream serves one stream through the core (on a worker of the
// switch's pool).
func runStream(s *streamConn) {
	defer s.c.streamDone(s)
	s.serve()
}

func (c *h2conn) streamDone(s *streamConn) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
		if !s.recvEOF && !s.reset {
			// The response is complete; the body the client may still send
			// is not wanted (RFC 9113 section 8.1).
			c.writeRST(s.id, http2.ErrCodeNo)
		}
	}
	// The connection window the unread body held goes back.
	if left := int64(len(s.rbuf) - s.roff); left > 0 {
		c.giveBack(left)
	}
	c.running--
	if !s.reset && c.refused > 0 {
		c.refused-- // a stream served whole earns back a refusal
	}
	c.lastActive = time.Now()
	last := c.running == 0 && (c.goaway || c.werr != nil)
	if c.running == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.mu.Unlock()
	s.release()
	if last {
		c.flushNow()
		c.conn.Close() // graceful end: the read loop stops
		return
	}
	c.flush()
}

// fail ends the connection with a GOAWAY carrying code.
func (c *h2conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	c.writeGoAway(code)
	c.goaway = true
	c.mu.Unlock()
	c.flushNow()
	c.conn.Close()
}

// shutdown sends GOAWAY(NO_ERROR): streams in progress finish, then the
// connection closes.
func (c *h2conn) shutdown() {
	c.mu.Lock()
	if c.goaway {
		c.mu.Unlock()
		return
	}
	c.goaway = true
	c.writeGoAway(http2.ErrCodeNo)
	idle := c.running == 0
	c.mu.Unlock()
	c.flushNow()
	if idle {
		c.conn.Close()
	}
}

// finish runs when the read loop ends: streams still running are told the
// client is gone, and serve returns once they have finished.
func (c *h2conn) finish() {
	c.mu.Lock()
	c.peerGone = true
	if c.werr == nil {
		c.werr = net.ErrClosed
	}
	for id, s := range c.streams {
		s.reset = true
		delete(c.streams, id)
		s.signal()
	}
	var drained chan struct{}
	if c.running > 0 {
		drained = make(chan struct{})
		c.drained = drained
	}
	c.mu.Unlock()
	c.conn.Close()
	if drained != nil {
		<-drained
	}
	close(c.stop)
}

// flush has the connection's writer write what is queued. The writer runs
// on a goroutine of its own: by the time it runs, more streams may have
// queued frames, and they go out in the same TLS record and system call.
func (c *h2conn) flush() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's writer.
func (c *h2conn) writeLoop() {
	for {
		select {
		case <-c.kick:
			// Let the goroutines that are ready run first: streams whose
			// responses arrived in the same poll queue theirs too.
			runtime.Gosched()
			c.flushNow()
		case <-c.stop:
			return
		}
	}
}

// flushNow writes the queued frames and returns when they are written (or
// the connection failed): on the connection's way out, GOAWAY must be on
// the wire before the close.
func (c *h2conn) flushNow() {
	c.mu.Lock()
	for c.flushing {
		c.flushed.Wait()
	}
	c.flushing = true
	for len(c.wbuf) > 0 && c.werr == nil {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		now := time.Now()
		if c.wdl.Sub(now) < c.idle/2 {
			c.wdl = now.Add(c.idle)
			c.conn.SetWriteDeadline(c.wdl)
		}
		c.mu.Unlock()
		_, err := c.conn.Write(buf)
		c.mu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.werr = err
		}
		for _, s := range c.streams {
			if s.blocked {
				s.signal()
			}
		}
	}
	if c.werr != nil {
		c.wbuf = c.wbuf[:0]
	}
	c.flushing = false
	c.flushed.Broadcast()
	c.mu.Unlock()
}

// Frame encoders: each appends one frame to the write buffer; c.mu is held.

func (c *h2conn) frameHeader(typ, flags byte, id uint32, length int) {
	c.wbuf = append(c.wbuf, byte(length>>16), byte(length>>8), byte(length), typ, flags)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, id&(1<<31-1))
}

func (c *h2conn) writeFrame(typ, flags byte, id uint32, payload []byte) {
	c.frameHeader(typ, flags, id, len(payload))
	c.wbuf = append(c.wbuf, payload...)
}

func (c *h2conn) writeSettings() {
	var p []byte
	for _, s := range []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
		{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: c.fr.MaxHeaderListSize},
		{ID: http2.SettingEnablePush, Val: 0},
	} {
		p = binary.BigEndian.AppendUint16(p, uint16(s.ID))
		p = binary.BigEndian.AppendUint32(p, s.Val)
	}
	c.writeFrame(h2Settings, 0, 0, p)
}

func (c *h2conn) writeWindowUpdate(id uint32, n uint32) {
	c.frameHeader(h2WindowUpdate, 0, id, 4)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, n)
}

func (c *h2conn) writeRST(id uint32, code http2.ErrCode) {
	c.frameHeader(h2RSTStream, 0, id, 4)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(code))
}

func (c *h2conn) writeGoAway(code http2.ErrCode) {
	c.frameHeader(h2GoAway, 0, 0, 8)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, c.lastID)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(code))
}

// writeHeaderBlock sends the block in c.hpack as HEADERS and, past the
// client's frame size, CONTINUATION frames.
func (c *h2conn) writeHeaderBlock(id uint32, end bool) {
	block := c.hpack.b
	max := int(c.peerMaxFrame)
	typ := byte(h2Headers)
	for {
		n := min(len(block), max)
		var flags byte
		if typ == h2Headers && end {
			flags |= h2FlagEndStream
		}
		if n == len(block) {
			flags |= h2FlagEndHeaders
		}
		c.writeFrame(typ, flags, id, block[:n])
		block = block[n:]
		if len(block) == 0 {
			return
		}
		typ = h2Continuation
	}
}
