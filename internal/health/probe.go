package health

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// Dialer opens connections to servers; *net.Dialer satisfies it. Inject one
// to probe through something other than the default network.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

var _ Dialer = (*net.Dialer)(nil)

// Probe runs one check of o (after WithDefaults) against address
// ("host:port") on a new connection, which it closes, and returns its
// verdict with the evidence: a Checker keeps connections between checks
// (Options.ReuseMax), Probe never does. It never takes longer than
// o.Timeout, and returns early when ctx is done. d nil means a plain
// *net.Dialer. Hash comparison is not done here: the reference hash is
// state, kept by a Checker; Result.Hash carries the hash seen.
func Probe(ctx context.Context, d Dialer, address string, o Options) Result {
	var a aborter
	stop := context.AfterFunc(ctx, a.abort)
	defer stop()
	res, _ := newProber(d, address, o, false).check(ctx, &a, idleConn{})
	return res
}

// defaultDialer is used when none is injected; it is never modified (a
// net.Dialer is safe for concurrent use). TCP keepalives are off: a
// check's connection is either closed at once or used again within an
// interval, and enabling them costs three setsockopt calls per connection.
var defaultDialer = &net.Dialer{KeepAlive: -1}

// prober runs the checks of one server. A Checker keeps one, so its
// requests are built once.
type prober struct {
	dialer  Dialer
	address string
	o       Options
	max     int    // checks one connection serves; 1 when none is kept
	opened  bool   // a connection has been opened (see connMax)
	req     []byte // http: the request with Connection: close, for a connection's last check
	keepReq []byte // http: the request without it, when connections are kept
	match   matcher
	reject  matcher
	reason  string // the last passing reason, reused while it does not change
}

// matcher is a body_match or body_reject regexp, searched as plain bytes
// when the whole pattern is a literal (most are: "Successfully Running"),
// since the regexp engine costs about a microsecond even on a short body.
type matcher struct {
	re  *regexp.Regexp // nil: no rule
	lit []byte         // the pattern, when it is a literal
}

func newMatcher(re *regexp.Regexp) matcher {
	m := matcher{re: re}
	if re != nil {
		if p, complete := re.LiteralPrefix(); complete {
			m.lit = []byte(p)
		}
	}
	return m
}

func (m matcher) find(b []byte) bool {
	if m.lit != nil {
		return bytes.Contains(b, m.lit)
	}
	return m.re.Match(b)
}

// newProber returns the prober of one server; reuse lets it keep http
// connections between checks as o.ReuseMax allows.
func newProber(d Dialer, address string, o Options, reuse bool) *prober {
	p := &prober{dialer: d, address: address, o: o, max: 1}
	if o.Type != TypeHTTP {
		return p
	}
	p.match, p.reject = newMatcher(o.BodyMatch), newMatcher(o.BodyReject)
	p.req = request(address, o, true)
	if reuse && o.reuses() {
		p.max = o.ReuseMax
		p.keepReq = request(address, o, false)
	}
	return p
}

// run is one check in progress: what each of its steps needs.
type run struct {
	ctx      context.Context
	abort    *aborter // the owner's: cuts the check short when it stops
	deadline time.Time
	sc       *scratch
	res      Result // by value: a *Result here would make every Result escape
}

// check runs one check, on idle's connection when there is one, and
// returns the verdict and the connection to keep for the next check (none
// after a failure, or when the connection cannot carry another request).
// a is the owner's aborter: it cuts the check short when the owner stops;
// a Checker has one for all its checks, instead of registering a callback
// on ctx for every check.
//
// The timeout is enforced by deadlines on the connection, not by a context
// per check: at ten thousand checks a second a timer context each is a
// measurable share of the CPU.
func (p *prober) check(ctx context.Context, a *aborter, idle idleConn) (Result, idleConn) {
	if p.o.Type == TypeNone {
		idle.close()
		return Result{At: time.Now(), OK: true, Reason: "no keepalive configured"}, idleConn{}
	}
	r := run{ctx: ctx, abort: a, sc: getScratch(), res: Result{At: time.Now()}}
	r.deadline = r.res.At.Add(p.o.Timeout)
	var keep idleConn
	if p.o.Type == TypeHTTP {
		keep = p.checkHTTP(&r, idle)
	} else {
		idle.close() // only http keeps connections
		if conn := p.connect(&r); conn != nil {
			switch p.o.Type {
			case TypeTCP:
				r.res.OK, r.res.Reason = true, "connected"
			case TypeScript:
				runScript(deadlineCtx{ctx, r.deadline}, &r.sc.rec, p.address, p.o, &r.res)
			default:
				r.res.Reason = fmt.Sprintf("unknown keepalive type %q", p.o.Type)
			}
			a.untrack()
			_ = conn.Close()
		}
	}
	r.res.Duration = time.Since(r.res.At)
	r.sc.rec.fill(&r.res)
	putScratch(r.sc)
	return r.res, keep
}

// connect opens a new connection for the check, gives it the check's
// deadline and points the recorder at it. On failure it sets res.Reason
// and returns nil.
func (p *prober) connect(r *run) net.Conn {
	conn, err := dial(r.ctx, p.dialer, p.address, p.o, r.deadline)
	if err == nil && !r.abort.use(conn, r.deadline) {
		_ = conn.Close()
		err = context.Canceled
	}
	if err != nil {
		r.res.Reason = describe(err, p.o.Timeout, "connecting")
		if !time.Now().Before(r.deadline) && !strings.HasPrefix(r.res.Reason, "timeout") {
			r.res.Reason = fmt.Sprintf("timeout after %s connecting", p.o.Timeout)
		}
		return nil
	}
	r.sc.attach(conn)
	r.res.Conn = Connection{Check: 1, Max: p.connMax()}
	return conn
}

// checkHTTP runs an http check on the idle connection when there is one.
// If the server had closed it (EOF or reset before a byte of the reply
// came back: its idle timeout ran out) the check runs again at once on a
// new connection; both attempts are in the evidence, the verdict is the
// second's. It returns the connection to keep.
func (p *prober) checkHTTP(r *run, idle idleConn) idleConn {
	if idle.conn != nil {
		if !r.abort.use(idle.conn, r.deadline) {
			_ = idle.conn.Close()
			r.res.Reason = describe(context.Canceled, p.o.Timeout, "sending request")
			return idleConn{}
		}
		r.sc.attach(idle.conn)
		r.res.Conn = Connection{Check: idle.uses + 1, Max: idle.max}
		resp, err := p.exchange(r.sc, r.res.Conn)
		if !closedWhileIdle(err, r.sc) {
			return p.conclude(r, idle.conn, resp, err)
		}
		r.abort.untrack()
		_ = idle.conn.Close()
		doing := "waiting for response head"
		if resp == nil {
			doing = "sending request"
		}
		r.res.Notes = append(r.res.Notes, r.res.Conn.String()+": "+describe(err, p.o.Timeout, doing)+"; retried on a new connection")
		r.sc.resetResponse()
		r.sc.rec.markRetry()
	}
	conn := p.connect(r)
	if conn == nil {
		return idleConn{}
	}
	resp, err := p.exchange(r.sc, r.res.Conn)
	return p.conclude(r, conn, resp, err)
}

// exchange sends the request over the recorded connection and reads one
// reply. The response is nil when the request could not be sent. The
// last check a connection may serve asks the server to close it.
func (p *prober) exchange(sc *scratch, c Connection) (*Response, error) {
	req := p.req
	if c.Check < c.Max {
		req = p.keepReq
	}
	if _, err := sc.rec.Write(req); err != nil {
		return nil, err
	}
	resp, err := readResponse(sc.br, p.o.Method == "HEAD", &sc.resp, sc.body[:0])
	sc.keepBody(resp)
	return resp, err
}

// conclude judges the reply and returns conn to keep, or closes it. A
// connection is kept only after a pass, while it has served fewer than
// max checks, and when the reply leaves no doubt that the connection can
// carry the next request (see unreusable).
func (p *prober) conclude(r *run, conn net.Conn, resp *Response, err error) idleConn {
	res := &r.res
	if resp != nil {
		res.Status = resp.Status
		res.Notes = append(res.Notes, resp.Notes...)
	}
	switch {
	case resp == nil:
		res.Reason = describe(err, p.o.Timeout, "sending request")
	case err != nil:
		res.Reason = describe(err, p.o.Timeout, "waiting for response head")
	default:
		p.judge(resp, res)
	}
	r.abort.untrack()
	if res.OK && res.Conn.Check < res.Conn.Max {
		why := p.unreusable(resp, r.sc)
		if why == "" {
			return idleConn{conn: conn, uses: res.Conn.Check, max: res.Conn.Max}
		}
		res.Notes = append(res.Notes, why)
	}
	if !res.OK && res.Conn.Reused() {
		res.Reason += " (reused connection, check " + strconv.Itoa(res.Conn.Check) + " of " + strconv.Itoa(res.Conn.Max) + ")"
	}
	_ = conn.Close()
	return idleConn{}
}

// aborter cuts short the I/O of the check in flight when its owner stops:
// it sets a past deadline on the check's connection.
type aborter struct {
	mu      sync.Mutex
	conn    net.Conn
	aborted bool
}

// use gives conn the check's deadline and makes it the connection to
// abort; false if already aborted. The deadline first, so an abort in
// between is not undone.
func (a *aborter) use(conn net.Conn, deadline time.Time) bool {
	_ = conn.SetDeadline(deadline)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conn = conn
	return !a.aborted
}

func (a *aborter) untrack() {
	a.mu.Lock()
	a.conn = nil
	a.mu.Unlock()
}

func (a *aborter) abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborted = true
	if a.conn != nil {
		_ = a.conn.SetDeadline(time.Now())
	}
}

// deadlineCtx is ctx with a deadline but no timer of its own: its Done
// closes only with ctx. It is given only to code that honours Deadline by
// setting it on the socket (net.Dialer, tls.Conn.HandshakeContext over a
// connection whose deadline is already set), never to an injected Dialer.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c deadlineCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func dial(ctx context.Context, d Dialer, address string, o Options, deadline time.Time) (net.Conn, error) {
	var conn net.Conn
	var err error
	if d == nil {
		// net.Dialer sets the deadline on the socket: no timer context needed.
		conn, err = defaultDialer.DialContext(deadlineCtx{ctx, deadline}, "tcp", address)
	} else {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, err = d.DialContext(dctx, "tcp", address)
		cancel()
	}
	if err != nil {
		return nil, err
	}
	if !o.SendProxy {
		return conn, nil
	}
	_ = conn.SetWriteDeadline(deadline)
	h := proxyproto.HeaderProxyFromAddrs(2, conn.LocalAddr(), conn.RemoteAddr())
	if _, err := h.WriteTo(conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("sending PROXY header: %w", err)
	}
	return conn, nil
}

// request builds the keepalive request: HTTP/1.1, with Connection: close
// when close is set (the connection is not kept, and a server without
// Content-Length ends the body by closing).
func request(address string, o Options, close bool) []byte {
	host := o.Host
	if host == "" {
		host = address
	}
	b := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-keepalive\r\nAccept: */*\r\n",
		o.Method, o.Path, host)
	if close {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// judge applies the rules in order: status, body_reject, body_match;
// then computes the hash for the Checker to compare.
func (p *prober) judge(resp *Response, res *Result) {
	o := p.o
	if !o.expects(resp.Status) {
		res.Reason = fmt.Sprintf("status %d, want one of %v", resp.Status, o.ExpectStatus)
		if loc := resp.Get("Location"); loc != "" {
			res.Reason += fmt.Sprintf(" (Location: %.80s)", loc)
		}
		return
	}
	if o.BodyReject != nil && p.reject.find(resp.Body) {
		res.Reason = fmt.Sprintf("body matched reject /%s/", o.BodyReject)
		return
	}
	if o.BodyMatch != nil && !p.match.find(resp.Body) {
		res.Reason = fmt.Sprintf("body did not match /%s/ (%d bytes)", o.BodyMatch, len(resp.Body))
		return
	}
	if o.Hash && o.Method == "GET" {
		res.Hash = bodyHash(resp.Body, o)
	}
	res.OK = true
	// Built without fmt: this is the reason of nearly every check.
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(append(b, "status "...), int64(resp.Status), 10)
	if o.Method == "GET" {
		b = strconv.AppendInt(append(b, ", body "...), int64(len(resp.Body)), 10)
		b = append(append(append(b, " bytes ("...), resp.Framing...), ')')
	}
	// A steady server gives the same reason every time: one string for all.
	if string(b) != p.reason {
		p.reason = string(b)
	}
	res.Reason = p.reason
}

// bodyHash is the hex SHA-256 of body with every hash_mask match removed.
func bodyHash(body []byte, o Options) string {
	for _, m := range o.HashMask {
		body = m.ReplaceAll(body, nil)
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// short abbreviates a hash for reasons: "ab12cd34..".
func short(h string) string {
	if len(h) > 8 {
		return h[:8] + ".."
	}
	return h
}
