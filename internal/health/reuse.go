package health

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"
)

// Connection reuse (http checks): a Checker keeps the connection of a
// passing check for the next one, as long as the reply leaves no doubt
// that the connection can carry another request, and opens a new one at
// least every ReuseMax checks. See README.md, "Connection reuse".

// idleConn is a connection kept between checks, the number of checks it
// has served and the most it may serve.
type idleConn struct {
	conn net.Conn
	uses int
	max  int
}

func (ic idleConn) close() {
	if ic.conn != nil {
		_ = ic.conn.Close()
	}
}

// connMax is the most checks a new connection may serve: max, except for
// the first connection of a prober, which serves a random 1..max. Servers
// configured together start together; without this they would all open
// their new connections in the same second, every max intervals.
func (p *prober) connMax() int {
	if p.opened || p.max <= 1 {
		return p.max
	}
	p.opened = true
	return 1 + rand.N(p.max)
}

// closedWhileIdle says whether a check on a reused connection failed
// before a byte of the reply arrived because the server had closed the
// connection: EOF or a reset, on the write or on the first read. Not a
// timeout: a server that keeps the connection and says nothing is slow.
func closedWhileIdle(err error, sc *scratch) bool {
	if err == nil || sc.rec.nRecv > 0 {
		return false
	}
	return isReset(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// unreusable returns why the connection cannot carry the next check after
// resp, or "" when it can: an HTTP/1.1 reply framed by its length (or with
// no body), nothing after it, no Connection: close, and no Keep-Alive idle
// timeout shorter than the wait for the next check. Any doubt ends reuse:
// the next check opens a new connection.
func (p *prober) unreusable(resp *Response, sc *scratch) string {
	switch {
	case resp.closed || resp.Framing == FramingClose:
		return "connection not kept: the reply ended with the connection"
	case resp.Proto != "HTTP/1.1":
		return "connection not kept: " + resp.Proto + " reply"
	case resp.Status == 101:
		return "connection not kept: 101 Switching Protocols"
	case sc.br.Buffered() > 0:
		return fmt.Sprintf("connection not kept: %d unexpected bytes after the reply", sc.br.Buffered())
	}
	for _, f := range resp.Header {
		switch {
		case strings.EqualFold(f.Name, "Connection") && hasToken(f.Value, "close"):
			return "connection not kept: the server sent Connection: close"
		case strings.EqualFold(f.Name, "Keep-Alive"):
			if t, ok := keepAliveTimeout(f.Value); ok && t < p.idleNeeded() {
				return fmt.Sprintf("connection not kept: the server closes it after %s idle (Keep-Alive: %.40s), before the next check", t, f.Value)
			}
		}
	}
	return ""
}

// idleNeeded is how long a kept connection must stay open on the server
// for the next check: the longer interval, and a second for scheduling.
func (p *prober) idleNeeded() time.Duration {
	return max(p.o.Interval, p.o.DownInterval) + time.Second
}

// hasToken reports whether the comma-separated list v holds token
// (case-insensitive), as in "Connection: keep-alive, close".
func hasToken(v, token string) bool {
	for rest, more := v, true; more; {
		var t string
		t, rest, more = strings.Cut(rest, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// keepAliveTimeout parses the timeout=N (seconds) of a Keep-Alive header.
func keepAliveTimeout(v string) (time.Duration, bool) {
	for rest, more := v, true; more; {
		var p string
		p, rest, more = strings.Cut(rest, ",")
		name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "timeout") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
		if err != nil || n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	return 0, false
}
