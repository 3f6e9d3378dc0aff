package httpproxy

import (
	"syscall"
	"time"
)

// Serving keep-alive requests from inside one poller wait.
//
// The runtime forgets a descriptor's readiness each time a read on it
// starts (RawConn.Read and net.Conn.Read both begin with a reset), so a
// read that starts after a response went out must try the socket first:
// against a client waiting for that response it finds nothing (EAGAIN),
// one system call per request that HAProxy does not make. serveInline
// instead stays in one RawConn.Read: a read that leaves room in the buffer
// proves the socket empty at that moment, any byte arriving later wakes the
// same wait, and so the next request is waited for without trying the
// socket first, pipelined requests included.
//
// Only requests that need nothing more from the client than their head are
// served inside the callback (no body, no upgrade, no 100-continue): the
// callback holds the descriptor's read lock, and anything that reads the
// client must run outside it. Those requests leave the callback parsed, and
// serve handles them as it does on the other path.

// inlineState is serveInline's state, kept in the clientConn so that the
// callback (bound once) allocates nothing.
type inlineState struct {
	fn        func(fd uintptr) bool // cc.inlineStep
	start     time.Time             // the first byte of the head being read
	scanned   int
	headerDL  bool // the header deadline is set
	waiting   bool // waiting with nothing buffered (live state liveWaiting)
	idleUntil time.Time
	noPark    bool // the idle wait runs to idleUntil: no parking (any more)
	drained   bool // a read found the socket empty (EAGAIN) or left room (short)
	eagain    bool // ... and it was EAGAIN: no end of stream is pending either

	// Results for serveInline.
	done, handedOff bool
	err             error
}

// serveInline serves requests until one needs serve's path (returned
// parsed, err nil, with its start), an error ends the head being read (err;
// start zero when no byte of it came), or the connection is finished
// (done; handedOff when a relay owns it now).
func (cc *clientConn) serveInline() (start time.Time, err error, done, handedOff bool) {
	s := &cc.inl
	if s.fn == nil {
		s.fn = cc.inlineStep
	}
	s.done, s.handedOff, s.err, s.noPark, s.idleUntil = false, false, nil, false, time.Time{}
	raw := cc.rd.rawConn()
	for {
		rerr := raw.Read(s.fn)
		if s.waiting {
			cc.live.state.CompareAndSwap(liveWaiting, liveServing)
			s.waiting = false
		}
		if rerr == nil {
			if s.done {
				return time.Time{}, nil, true, s.handedOff
			}
			return s.takeStart(), s.err, false, false
		}
		// The wait ended: a deadline, or the connection was closed.
		if !isTimeout(rerr) || cc.rd.r != cc.rd.w || s.noPark || cc.h.draining.Load() {
			// Closed, the header deadline with part of a head here, or
			// the keep-alive timeout.
			return s.takeStart(), rerr, false, false
		}
		// Quiet for the park deadline: park, unless the connection
		// cannot be; then wait on to the keep-alive timeout.
		cc.setReadDeadline(time.Time{})
		cc.rd.put()
		if cc.live.park(s.idleUntil) {
			return time.Time{}, errParked, false, false
		}
		s.noPark = true
		cc.setReadDeadline(s.idleUntil)
	}
}

// takeStart returns and clears the start of the head that was read.
func (s *inlineState) takeStart() time.Time {
	start := s.start
	s.start, s.scanned, s.headerDL = time.Time{}, 0, false
	return start
}

// inlineStep is the RawConn.Read callback: true ends the wait (see the
// results in cc.inl), false waits for the socket to turn readable.
func (cc *clientConn) inlineStep(fd uintptr) bool {
	s := &cc.inl
	if s.waiting {
		cc.live.state.CompareAndSwap(liveWaiting, liveServing)
		s.waiting = false
	}
	s.drained, s.eagain = false, false // first call, or woken: the socket may have bytes
	rd := &cc.rd
	for {
		cfg := cc.h.cfg.Load()
		if rd.r < rd.w {
			if s.start.IsZero() {
				s.start = time.Now()
			}
			ok, err := cc.parseHead(cfg, &s.scanned)
			if err != nil {
				s.err = err
				return true
			}
			if ok {
				req := &cc.req
				if req.framing != bodyNone || req.upgrade || req.expect100 {
					return true // reads the client: serve's path
				}
				start := s.takeStart()
				keep, handedOff := cc.serveParsed(cfg, start)
				if !keep {
					s.done, s.handedOff = true, handedOff
					return true
				}
				s.noPark, s.idleUntil = false, time.Time{} // a new idle wait
				cc.rd.max = max(cfg.MaxHeaderBytes, smallBuf)
				continue
			}
		}
		// A short read proves no more bytes were there, but an end of
		// stream may be: it came with the bytes and will wake nobody. So
		// wait on a short read only with nothing buffered and where the
		// wait can end in parking (the parker's level-triggered poll sees
		// a pending end at once, so a half-closed client is finished
		// within parkAfter); otherwise read once more.
		if s.drained && (s.eagain || rd.r == rd.w && cc.canPark(cfg)) {
			return cc.inlineWait(cfg)
		}
		short, err := rd.readFD(fd)
		switch {
		case err == syscall.EAGAIN:
			s.drained, s.eagain = true, true
		case err == errFull:
			s.err = ErrHeaderTooLarge
			return true
		case err != nil:
			s.err = err // io.EOF between requests: serve ends quietly
			return true
		default:
			if s.start.IsZero() {
				s.start = time.Now()
			}
			s.drained = short
		}
	}
}

// inlineWait arms the deadline for the wait ahead and returns false (wait),
// or true to end serving (draining while idle).
func (cc *clientConn) inlineWait(cfg *Config) bool {
	s := &cc.inl
	rd := &cc.rd
	if rd.r < rd.w {
		// Part of a head: the header deadline, from its first byte.
		if !s.headerDL {
			cc.setReadDeadline(s.start.Add(cfg.ClientHeader))
			s.headerDL = true
		}
		return false
	}
	if cc.h.draining.Load() {
		s.done = true
		return true
	}
	rd.r, rd.w = 0, 0
	if rd.bp != nil {
		rd.put() // wait without a buffer
	}
	if s.idleUntil.IsZero() { // a new idle wait
		var canPark bool
		s.idleUntil, canPark = cc.armIdle(cfg)
		s.noPark = !canPark
	}
	cc.live.state.Store(liveWaiting)
	s.waiting = true
	return false
}

// canPark reports whether an idle wait of this connection may end in
// parking.
func (cc *clientConn) canPark(cfg *Config) bool {
	return !cc.live.noPark && len(cc.private) == 0 && cfg.ClientIdle > parkAfter
}
