package health

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
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
	if d == nil {
		d = &net.Dialer{}
	}
	res := Result{At: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	switch o.Type {
	case TypeNone:
		res.OK, res.Reason = true, "no keepalive configured"
		return res
	}
	conn, err := dial(ctx, d, address, o)
	if err != nil {
		res.Reason = describe(err, o.Timeout, "connecting")
		if ctx.Err() != nil && !strings.HasPrefix(res.Reason, "timeout") {
			res.Reason = fmt.Sprintf("timeout after %s connecting", o.Timeout)
		}
		res.Duration = time.Since(res.At)
		return res
	}
	rec := newRecorder(conn)
	// Closing on ctx's end (timeout or shutdown) unblocks every read and write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer func() {
		stop()
		_ = conn.Close()
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	switch o.Type {
	case TypeTCP:
		res.OK, res.Reason = true, "connected"
	case TypeHTTP:
		probeHTTP(rec, address, o, &res)
	case TypeScript:
		runScript(ctx, rec, address, o, &res)
	default:
		res.Reason = fmt.Sprintf("unknown keepalive type %q", o.Type)
	}
	res.Duration = time.Since(res.At)
	rec.fill(&res)
	return res
}

func dial(ctx context.Context, d Dialer, address string, o Options) (net.Conn, error) {
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	if !o.SendProxy {
		return conn, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
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

func probeHTTP(rec *recorder, address string, o Options, res *Result) {
	if _, err := rec.Write(request(address, o)); err != nil {
		res.Reason = describe(err, o.Timeout, "sending request")
		return
	}
	resp, err := ReadResponse(bufio.NewReaderSize(rec, 4096), o.Method == "HEAD")
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
	res.Reason = fmt.Sprintf("status %d", resp.Status)
	if o.Method == "GET" {
		res.Reason += fmt.Sprintf(", body %d bytes (%s)", len(resp.Body), resp.Framing)
	}
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
