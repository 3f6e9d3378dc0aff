package health

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
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
// ("host:port") and returns its verdict with the evidence. It never takes
// longer than o.Timeout, and returns early when ctx is done. d nil means a
// plain *net.Dialer. Hash comparison is not done here: the reference hash
// is state, kept by a Checker; Result.Hash carries the hash seen.
func Probe(ctx context.Context, d Dialer, address string, o Options) Result {
	var a aborter
	stop := context.AfterFunc(ctx, a.abort)
	defer stop()
	return probe(ctx, d, &a, address, o, nil)
}

// defaultDialer is used when none is injected; it is never modified (a
// net.Dialer is safe for concurrent use). TCP keepalives are off: a probe's
// connection lives at most one timeout, and enabling them costs three
// setsockopt calls per probe.
var defaultDialer = &net.Dialer{KeepAlive: -1}

// probe is Probe for a caller that owns a's lifetime: a Checker aborts
// through its one aborter when stopped, instead of registering a callback
// on ctx for every probe. req is the HTTP request to send; nil builds it.
//
// The timeout is enforced by deadlines on the connection, not by a context
// per probe: at ten thousand probes a second a timer context each is a
// measurable share of the CPU.
func probe(ctx context.Context, d Dialer, a *aborter, address string, o Options, req []byte) Result {
	res := Result{At: time.Now()}
	if o.Type == TypeNone {
		res.OK, res.Reason = true, "no keepalive configured"
		return res
	}
	deadline := res.At.Add(o.Timeout)
	conn, err := dial(ctx, d, address, o, deadline)
	if err == nil {
		// The deadline first, so an abort between the two is not undone.
		_ = conn.SetDeadline(deadline)
		if !a.track(conn) {
			_ = conn.Close()
			err = context.Canceled
		}
	}
	if err != nil {
		res.Reason = describe(err, o.Timeout, "connecting")
		if !time.Now().Before(deadline) && !strings.HasPrefix(res.Reason, "timeout") {
			res.Reason = fmt.Sprintf("timeout after %s connecting", o.Timeout)
		}
		res.Duration = time.Since(res.At)
		return res
	}
	sc := getScratch(conn)
	defer func() {
		a.untrack()
		_ = conn.Close()
		putScratch(sc)
	}()
	switch o.Type {
	case TypeTCP:
		res.OK, res.Reason = true, "connected"
	case TypeHTTP:
		if req == nil {
			req = request(address, o)
		}
		probeHTTP(sc, req, o, &res)
	case TypeScript:
		runScript(deadlineCtx{ctx, deadline}, &sc.rec, address, o, &res)
	default:
		res.Reason = fmt.Sprintf("unknown keepalive type %q", o.Type)
	}
	res.Duration = time.Since(res.At)
	sc.rec.fill(&res)
	return res
}

// aborter cuts short the I/O of the probe in flight when its owner stops:
// it sets a past deadline on the probe's connection.
type aborter struct {
	mu      sync.Mutex
	conn    net.Conn
	aborted bool
}

// track makes conn the connection to abort; false if already aborted.
func (a *aborter) track(conn net.Conn) bool {
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

// request builds the keepalive request. HTTP/1.1 with Connection: close,
// so a server without Content-Length ends the body by closing.
func request(address string, o Options) []byte {
	host := o.Host
	if host == "" {
		host = address
	}
	return fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-keepalive\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		o.Method, o.Path, host)
}

func probeHTTP(sc *scratch, req []byte, o Options, res *Result) {
	if _, err := sc.rec.Write(req); err != nil {
		res.Reason = describe(err, o.Timeout, "sending request")
		return
	}
	resp, err := readResponse(sc.br, o.Method == "HEAD", &sc.resp, sc.body[:0])
	defer sc.keepBody(resp)
	if resp != nil {
		res.Status = resp.Status
		res.Notes = append(res.Notes, resp.Notes...)
	}
	if err != nil {
		res.Reason = describe(err, o.Timeout, "waiting for response head")
		return
	}
	judgeHTTP(resp, o, res)
}

// judgeHTTP applies the rules in order: status, body_reject, body_match;
// then computes the hash for the Checker to compare.
func judgeHTTP(resp *Response, o Options, res *Result) {
	if !o.expects(resp.Status) {
		res.Reason = fmt.Sprintf("status %d, want one of %v", resp.Status, o.ExpectStatus)
		if loc := resp.Get("Location"); loc != "" {
			res.Reason += fmt.Sprintf(" (Location: %.80s)", loc)
		}
		return
	}
	if o.BodyReject != nil {
		if m := o.BodyReject.Find(resp.Body); m != nil {
			res.Reason = fmt.Sprintf("body matched reject /%s/", o.BodyReject)
			return
		}
	}
	if o.BodyMatch != nil && !o.BodyMatch.Match(resp.Body) {
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
	res.Reason = string(b)
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
