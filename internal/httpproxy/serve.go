package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// clientConn is the state of one client connection, reused across its
// requests so that steady-state forwarding allocates nothing.
type clientConn struct {
	h    *Handler
	live *live
	conn net.Conn
	rd   reader
	req  request
	resp response
	out  []byte

	id      identity
	private []*upConn // server connections bound to this client (PROXY header, transparent)

	tried  [8]int
	in     balance.Input // per request; a field so it does not escape per call
	cors   *CORS         // the matched route's policy, if any
	pin    pin           // persistence for the request
	rule   int           // the matched route
	keyBuf []byte        // persistence key storage
	extra  []byte        // response fields fulcrum adds (Set-Cookie)
	xff    [][]byte
	wdl    time.Time // the write deadline last set on conn through cc
	rdl    time.Time // the read deadline likewise; zero when unknown
	inl    inlineState
}

// setReadDeadline sets the client's read deadline to t and records it.
func (cc *clientConn) setReadDeadline(t time.Time) {
	cc.rdl = t
	cc.conn.SetReadDeadline(t)
}

// setWriteDeadline sets the client's write deadline to t.
func (cc *clientConn) setWriteDeadline(t time.Time) {
	cc.wdl = t
	cc.conn.SetWriteDeadline(t)
}

// extendWriteDeadline gives the client at least d/2 and at most d from now
// to take what is written next, moving the deadline only once it has come
// closer than d/2: keep-alive responses then cost no timer update each.
// Deadlines set elsewhere on the connection are later than the one
// recorded (body copies set now+d), so the record never overstates it.
func (cc *clientConn) extendWriteDeadline(d time.Duration) {
	now := time.Now()
	if cc.wdl.Sub(now) < d/2 {
		cc.setWriteDeadline(now.Add(d))
	}
}

// clientConns recycles connection state, so that a new connection reuses
// the header slices and buffers an earlier one grew.
var clientConns = sync.Pool{New: func() any { return new(clientConn) }}

func newClientConn(h *Handler, c net.Conn) *clientConn {
	cc := clientConns.Get().(*clientConn)
	cc.h, cc.conn = h, c
	cc.id.init(c, h.cfg.Load().TrustedProxies)
	return cc
}

// release closes what the connection still holds and recycles its state.
func (cc *clientConn) release() {
	for _, uc := range cc.private {
		uc.close()
	}
	cc.rd.release()
	clear(cc.private)
	// Keep the grown slices, drop everything that points elsewhere.
	*cc = clientConn{
		req:     request{fields: cc.req.fields[:0], connection: cc.req.connection[:0]},
		resp:    response{fields: cc.resp.fields[:0], connection: cc.resp.connection[:0]},
		out:     cc.out[:0],
		id:      identity{peerText: cc.id.peerText[:0], clientText: cc.id.clientText[:0]},
		private: cc.private[:0],
		inl:     inlineState{fn: cc.inl.fn},
		xff:     cc.xff[:0],
		keyBuf:  cc.keyBuf[:0],
		extra:   cc.extra[:0],
	}
	clientConns.Put(cc)
}

// takePrivate returns this client's idle connection to up, if it still
// carries the same client identity.
func (cc *clientConn) takePrivate(up *Upstream) *upConn {
	for i, uc := range cc.private {
		if uc.up != up {
			continue
		}
		cc.private = append(cc.private[:i], cc.private[i+1:]...)
		if uc.client != cc.id.client {
			uc.close()
			return nil
		}
		uc.reused = true
		return uc
	}
	return nil
}

// exchange outcome
type outcome struct {
	status  int
	bytes   int64
	err     error
	server  *pool.Server
	replied bool // something was written to the client
	keep    bool // the client connection may serve another request
}

// serve serves requests until the connection is done (false: the caller
// finishes it), parked, or a relay (true: the parker or the relay owns it
// now; a relay is not started yet).
func (cc *clientConn) serve() (parked bool) {
	cfg := cc.h.cfg.Load()
	cc.rd.init(cc.conn, cfg.MaxHeaderBytes)
	inline := cc.rd.rawConn() != nil
	for {
		cfg = cc.h.cfg.Load()
		cc.rd.max = max(cfg.MaxHeaderBytes, smallBuf)
		var start time.Time
		var err error
		if inline {
			var done, handedOff bool
			start, err, done, handedOff = cc.serveInline()
			if done {
				return handedOff
			}
		} else {
			start, err = cc.readHead(cfg)
		}
		if err == errParked {
			return true
		}
		// A request that arrives after a reload is served by the new
		// config, however long its connection waited with the old one.
		cfg = cc.h.cfg.Load()
		if err != nil {
			if start.IsZero() || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				// Idle connection closed or timed out, or a client that
				// went away mid-head: nobody to answer.
				return
			}
			if isTimeout(err) {
				cc.writeError(408, "request head not received in time", true)
				return
			}
			cc.writeError(statusFor(err), err.Error(), true)
			cc.logRequest(cfg, start, -1, nil, outcome{status: statusFor(err), err: err})
			return
		}
		keep, handedOff := cc.serveParsed(cfg, start)
		if !keep {
			return handedOff
		}
	}
}

// serveParsed serves the request whose head was just parsed. keep reports
// whether the connection may serve another; handedOff, that it went to a
// relay that parks (logged when it ends, run on goroutines of its own, not
// this deep stack).
func (cc *clientConn) serveParsed(cfg *Config, start time.Time) (keep, handedOff bool) {
	cc.id.peerTrusted = inPrefixes(cc.id.peer.Addr(), cfg.TrustedProxies)
	cc.id.settle(&cc.req, cfg.TrustedProxies)
	o, rule, t := cc.handle(cfg, start)
	if cc.req.framing != bodyNone {
		cc.rdl = time.Time{} // body reads set deadlines of their own
	}
	if r := cc.live.tun.Load(); r != nil {
		if cc.h.access != nil {
			r.rec, r.start = cc.accessRecord(cfg, start, rule, t, o), start
		}
		return false, true
	}
	cc.logRequest(cfg, start, rule, t, o)
	if o.err != nil && isTimeout(o.err) {
		// A client that stopped reading: reset rather than close, so
		// the kernel drops what it still holds for it at once.
		if tc, ok := cc.conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	return o.keep && !cc.h.draining.Load(), false
}

// errParked is readHead's way of saying the connection went to the parker.
var errParked = errors.New("connection parked")

// readHead waits for the next request and parses its head. start is zero when
// no byte of a new request arrived.
func (cc *clientConn) readHead(cfg *Config) (start time.Time, err error) {
	rd := &cc.rd
	if rd.r == rd.w {
		if err := cc.waitIdle(cfg); err != nil {
			return time.Time{}, err
		}
	}
	start = time.Now()
	// The header deadline is set only when the head is not all here yet
	// (it nearly always is): one timer update less per request. Whatever
	// reads the client next sets its own deadline.
	waiting := false
	scanned := 0
	for {
		if ok, err := cc.parseHead(cfg, &scanned); ok || err != nil {
			return start, err
		}
		if !waiting {
			cc.setReadDeadline(start.Add(cfg.ClientHeader))
			waiting = true
		}
		if err := rd.fill(); err != nil {
			if err == errFull {
				return start, ErrHeaderTooLarge
			}
			return start, err
		}
	}
}

// parseHead parses a request head from what is buffered; false (and no
// error) means the head is not all here yet. *scanned carries how far the
// search for its end got, between calls.
func (cc *clientConn) parseHead(cfg *Config, scanned *int) (bool, error) {
	rd := &cc.rd
	// RFC 9112 2.2: empty lines before a request line are ignored (a few:
	// more would be a way to hold the connection).
	for skipped := 0; skipped < 4; skipped++ {
		b := rd.buffered()
		if len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
			rd.discard(2)
			*scanned = 0
			continue
		}
		break
	}
	if end := findHeadEnd(rd.buffered(), *scanned); end >= 0 {
		if end > cfg.MaxHeaderBytes {
			return false, ErrHeaderTooLarge
		}
		if err := parseRequest(rd.buffered()[:end], &cc.req); err != nil {
			return false, err
		}
		rd.discard(end)
		return true, nil
	}
	*scanned = len(rd.buffered())
	if *scanned >= cfg.MaxHeaderBytes {
		return false, ErrHeaderTooLarge
	}
	return false, nil
}

// waitIdle waits for the first bytes of the next request, up to the
// keep-alive timeout. A connection still idle after parkAfter is parked
// (errParked) when nothing binds it to this goroutine.
func (cc *clientConn) waitIdle(cfg *Config) error {
	l := cc.live
	l.state.Store(liveWaiting)
	defer l.state.CompareAndSwap(liveWaiting, liveServing)
	if cc.h.draining.Load() {
		return io.EOF
	}
	idleUntil, canPark := cc.armIdle(cfg)
	err := cc.rd.fillIdle()
	if err == nil || !canPark || !isTimeout(err) || cc.h.draining.Load() {
		return err
	}
	// Idle for parkAfter: park, unless the connection cannot be.
	cc.setReadDeadline(time.Time{})
	cc.rd.put()
	if l.park(idleUntil) {
		return errParked
	}
	cc.setReadDeadline(idleUntil)
	return cc.rd.fillIdle()
}

// armIdle sets the read deadline for a wait for the next request: the park
// deadline when the wait may end in parking, else the keep-alive timeout
// (idleUntil). A connection parks after parkAfter/2 to parkAfter of quiet:
// the deadline set for the last wait usually still serves, saving a timer
// update per request.
func (cc *clientConn) armIdle(cfg *Config) (idleUntil time.Time, canPark bool) {
	now := time.Now()
	idleUntil = now.Add(cfg.ClientIdle)
	if !cc.canPark(cfg) {
		cc.setReadDeadline(idleUntil)
		return idleUntil, false
	}
	if d := cc.rdl.Sub(now); d < parkAfter/2 || d > parkAfter {
		cc.setReadDeadline(now.Add(parkAfter))
	}
	return idleUntil, true
}

// handle routes and forwards one request whose head is parsed.
func (cc *clientConn) handle(cfg *Config, start time.Time) (o outcome, rule int, t *Target) {
	req := &cc.req
	rule = -1
	if cfg.MaxBody > 0 && req.framing == bodyLength && req.length > cfg.MaxBody {
		return cc.fail(ErrBodyTooLarge), rule, nil
	}
	path := pathOnly(req.path)
	if len(cfg.Access) > 0 && !cc.allowed(cfg.Access, path) {
		return cc.forbid(), -1, nil
	}
	if cfg.Limits != nil {
		if o, refused := cc.limited(cfg.Limits, 0, cfg.Rate); refused {
			return o, -1, nil
		}
	}
	target, rule, ok := cfg.Routes.Match(req.host, path, req.header)
	if !ok || target < 0 || target >= len(cfg.Targets) {
		return cc.fail(ErrNoRoute), -1, nil
	}
	if rule < len(cfg.RouteAccess) && len(cfg.RouteAccess[rule]) > 0 && !cc.allowed(cfg.RouteAccess[rule], path) {
		return cc.forbid(), rule, cfg.Targets[target]
	}
	if cfg.Limits != nil && rule < len(cfg.RouteRate) {
		if o, refused := cc.limited(cfg.Limits, rule+1, cfg.RouteRate[rule]); refused {
			return o, rule, cfg.Targets[target]
		}
	}
	t = cfg.Targets[target]
	cc.rule = rule
	cc.cors = nil
	if rule < len(cfg.CORS) && cfg.CORS[rule] != nil {
		cc.cors = cfg.CORS[rule]
		if o, done := cc.corsPreflight(cc.cors); done {
			return o, rule, t
		}
	}
	cc.in = balance.Input{Tried: cc.tried[:0]}
	in := &cc.in
	cc.hashKey(t, in)
	cc.extra = cc.extra[:0]
	cc.lookupPin(t)
	if cc.pin.stale && t.Persist.Fail {
		// on_down: fail — the session's server is gone; say so rather
		// than send the client to a server without its session.
		return cc.fail(ErrNoServer), rule, t
	}

	var lastErr error
	var lastSrv *pool.Server
	for attempt := 0; ; attempt++ {
		idx := -1
		if attempt == 0 && cc.pin.server >= 0 {
			idx = cc.pin.server // pinned clients reach their server, draining or not
		} else {
			idx = t.Picker.Pick(in)
		}
		if idx < 0 && len(in.Tried) > 0 {
			// Every usable server was tried: retries may go to them again.
			in.Tried = in.Tried[:0]
			idx = t.Picker.Pick(in)
		}
		if idx < 0 {
			if lastErr == nil {
				lastErr = ErrNoServer
			}
			break
		}
		var retry bool
		o, retry = cc.exchange(cfg, t, idx)
		if o.err == nil || o.replied {
			return o, rule, t
		}
		lastErr, lastSrv = o.err, o.server
		if !retry || attempt >= t.Retries {
			break
		}
		in.Tried = append(in.Tried, idx)
	}
	o = cc.fail(lastErr)
	o.server = lastSrv
	return o, rule, t
}

// fail answers the request with the status its error maps to. The connection
// stays open only when the request had no body left unread.
func (cc *clientConn) fail(err error) outcome {
	status := statusFor(err)
	closeAfter := cc.req.framing != bodyNone || cc.req.close
	cc.writeError(status, err.Error(), closeAfter)
	return outcome{status: status, err: err, replied: true, keep: !closeAfter}
}

// hashKey fills in the balancing key for hash algorithms.
func (cc *clientConn) hashKey(t *Target, in *balance.Input) {
	switch t.HashBy {
	case HashSource:
		in.Key, in.HasKey = balance.HashBytes(cc.id.clientText), true
	case HashURI:
		in.Key, in.HasKey = balance.HashBytes(cc.req.path), true
	case HashHeader:
		if v := cc.req.header(t.HashHeader); v != nil {
			in.Key, in.HasKey = balance.HashBytes(v), true
		}
	}
}

// exchange sends the request to one server and relays its response. retry
// reports whether the request may go to another server after err.
func (cc *clientConn) exchange(cfg *Config, t *Target, idx int) (o outcome, retry bool) {
	up := t.Upstreams[idx]
	srv := up.srv
	o.server = srv
	req := &cc.req
	srv.Acquire()
	failed := true
	defer func() {
		srv.Release(failed)
		if t.Observe != nil {
			t.Observe(srv, failed)
		}
	}()

	slot, err := up.acquire(t.ConnectTimeout)
	if err != nil {
		// Full and its queue too: another server may take the request.
		o.err, failed = err, false
		return o, true
	}
	defer releaseSlot(slot)

	// What may be retried once the request is on the wire: idempotent
	// requests without a body (nothing of the client's was consumed).
	canResend := req.idempotent() && req.framing == bodyNone
	var uc *upConn
	var resp *response
	var sent time.Time
	for fresh := false; ; fresh = true {
		var err error
		var stale bool
		uc, resp, sent, stale, err = cc.send(cfg, t, up, fresh)
		if err == nil {
			break
		}
		o.err = err
		var ce *clientError
		if errors.As(err, &ce) {
			// The client broke off or sent a bad body: not the server's
			// fault, and nothing to retry.
			failed = false
			if errors.Is(err, ErrBadChunk) || errors.Is(err, ErrBodyTooLarge) {
				o = cc.fail(ce.err)
				o.server = srv
			}
			return o, false
		}
		if stale {
			// A pooled connection the server had closed while idle: not
			// the server failing. Try once more on a new connection.
			failed = false
			if canResend && !fresh {
				continue
			}
		}
		var dial *DialError
		if errors.As(err, &dial) {
			return o, true
		}
		return o, canResend
	}
	srv.Latency.Observe(time.Since(sent))
	o.status = resp.status

	if resp.status == 101 {
		if !req.upgrade || !resp.upgrade {
			uc.close()
			o.err = ErrUpstreamProtocol
			return o, false
		}
		failed = false
		return cc.tunnel(cfg, uc, o), false
	}

	cc.learnPin(t, idx, resp)
	if cc.id.peerTrusted && req.header("x-fulcrum-trace") != nil {
		cc.traceField(cfg, t, idx)
	}
	closeClient := req.close || req.minor == 0 || cc.h.draining.Load()
	n, werr, rerr := cc.writeResponse(cfg, uc, resp, closeClient)
	o.bytes, o.replied = n, true
	switch {
	case rerr != nil:
		// The server broke off mid-body: the client's response is cut.
		uc.close()
		o.err, o.keep = rerr, false
		return o, false
	case werr != nil:
		uc.close()
		failed = false
		o.err, o.keep = werr, false
		return o, false
	}
	failed = resp.status >= 500
	switch {
	case resp.close:
		uc.close()
	case t.ClientIP.private():
		cc.private = append(cc.private, uc)
	default:
		up.put(uc)
	}
	o.keep = !closeClient
	return o, false
}

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// canceler is a client connection that knows when its client gave up
// before the request was sent (an HTTP/2 stream's reset: streamConn).
type canceler interface{ Canceled() bool }

// send gets a connection to the server (a new one when fresh), writes the
// request head and body, and reads the response head. stale reports a
// failure typical of a pooled connection that the server closed while idle.
func (cc *clientConn) send(cfg *Config, t *Target, up *Upstream, fresh bool) (uc *upConn, resp *response, sent time.Time, stale bool, err error) {
	req := &cc.req
	if cn, ok := cc.conn.(canceler); ok && cn.Canceled() {
		// An HTTP/2 stream reset while it waited (a rapid-reset flood):
		// nothing goes to a server for it.
		return nil, nil, sent, false, &clientError{context.Canceled}
	}
	switch {
	case t.ClientIP.private():
		if !fresh {
			uc = cc.takePrivate(up)
		}
		if uc == nil {
			ctx, cancel := context.WithTimeout(context.Background(), t.ConnectTimeout)
			uc, err = cc.dialPrivate(ctx, t, up)
			cancel()
		}
	default:
		if !fresh {
			uc = up.idleConn()
		}
		if uc == nil {
			ctx, cancel := context.WithTimeout(context.Background(), t.ConnectTimeout)
			uc, err = up.dial(ctx, &cc.h.dialer)
			cancel()
		}
	}
	if err != nil {
		return nil, nil, sent, false, err
	}
	cc.out = cc.writeRequestHead(cfg, t, up, cc.out[:0])
	if req.framing == bodyNone {
		sent = time.Now()
		wrote, err := uc.writeThenRead(cc.out, sent.Add(t.ResponseTimeout))
		if err != errNoSocket {
			if err != nil {
				stale = uc.reused && (!wrote || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
				uc.close()
				if wrote && isTimeout(err) {
					err = &responseTimeoutError{err: err}
				}
				return nil, nil, sent, stale, err
			}
			resp, err = cc.readResponseHead(uc, t, sent)
			if err != nil {
				uc.close()
				return nil, nil, sent, false, err
			}
			return uc, resp, sent, false, nil
		}
	}
	uc.conn.SetWriteDeadline(time.Now().Add(t.ResponseTimeout))
	if _, err := uc.conn.Write(cc.out); err != nil {
		uc.close()
		return nil, nil, sent, uc.reused, err
	}
	sent = time.Now()
	if req.framing != bodyNone {
		if req.expect100 && req.minor == 1 {
			cc.setWriteDeadline(time.Now().Add(cfg.ClientBody))
			if _, err := cc.conn.Write(continue100); err != nil {
				uc.close()
				return nil, nil, sent, false, &clientError{err}
			}
		}
		var err error
		if req.framing == bodyLength {
			_, err = copyN(uc.conn, &cc.rd, req.length, cfg.ClientBody)
		} else {
			_, err = copyChunked(uc.conn, &cc.rd, true, true, cfg.MaxBody, cfg.ClientBody)
		}
		if err != nil {
			// The body is half consumed: the client connection cannot
			// carry another request whatever happens now.
			cc.req.close = true
			if cc.clientSideBody(err, uc) {
				uc.close()
				return nil, nil, sent, false, &clientError{err}
			}
			// The server stopped reading: it may have answered early
			// (413, 401...); relay that answer when there is one.
			resp, rerr := cc.readResponseHead(uc, t, time.Now().Add(-t.ResponseTimeout+time.Second))
			if rerr != nil {
				uc.close()
				return nil, nil, sent, false, fmt.Errorf("sending request body: %w", err)
			}
			resp.close = true
			return uc, resp, sent, false, nil
		}
		sent = time.Now()
	}
	resp, err = cc.readResponseHead(uc, t, sent)
	if err != nil {
		stale = uc.reused && len(uc.rd.buffered()) == 0 &&
			(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
		uc.close()
		return nil, nil, sent, stale, err
	}
	return uc, resp, sent, false, nil
}

// readResponseHead reads the server's final response head, relaying interim
// 1xx responses (other than 101) to HTTP/1.1 clients.
func (cc *clientConn) readResponseHead(uc *upConn, t *Target, sent time.Time) (*response, error) {
	rd := &uc.rd
	deadline := sent.Add(t.ResponseTimeout)
	if !deadline.Equal(uc.rdl) {
		uc.conn.SetReadDeadline(deadline)
		uc.rdl = deadline
	}
	for {
		scanned := 0
		for {
			if end := findRespHeadEnd(rd.buffered(), scanned); end >= 0 {
				if err := parseResponse(rd.buffered()[:end], &cc.resp, cc.req.isHead()); err != nil {
					return nil, err
				}
				if s := cc.resp.status; s >= 100 && s < 200 && s != 101 {
					if cc.req.minor == 1 && s != 100 {
						cc.setWriteDeadline(deadline)
						cc.conn.Write(rd.buffered()[:end])
					}
					rd.discard(end)
					break
				}
				rd.discard(end)
				return &cc.resp, nil
			}
			scanned = len(rd.buffered())
			if err := rd.fill(); err != nil {
				switch {
				case err == errFull:
					return nil, ErrRespTooLarge
				case isTimeout(err):
					return nil, &responseTimeoutError{err: err}
				}
				return nil, err
			}
		}
	}
}

// writeError sends a short response generated by fulcrum.
func (cc *clientConn) writeError(status int, msg string, closeAfter bool) {
	b := cc.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, statusText(status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"...)
	if status == 503 {
		b = append(b, "Retry-After: 1\r\n"...)
	}
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	body := statusText(status)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)+1), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	b = append(b, '\n')
	cc.out = b
	cc.setWriteDeadline(time.Now().Add(5 * time.Second))
	cc.conn.Write(b)
	if closeAfter {
		if tc, ok := cc.conn.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
	}
	_ = msg
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 413:
		return "Content Too Large"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}
