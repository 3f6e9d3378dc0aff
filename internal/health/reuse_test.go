package health

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// received is one request a keepAlive server received.
type received struct {
	conn, n int // connection (1, 2, ...) and request on it (1, 2, ...)
	line    string
	close   bool // it carried Connection: close
}

// keepAlive is a raw HTTP/1.1 server that answers every request of a
// connection until the client closes it, and logs them.
type keepAlive struct {
	addr   string
	conns  atomic.Int32
	open   atomic.Int32 // connections not yet closed by either side
	mu     sync.Mutex
	log    []received
	answer func(r received) (reply string, last bool)
}

// serveKeepAlive answers each request with answer(r); after a last reply,
// or a request with Connection: close, it closes the connection.
func serveKeepAlive(t testing.TB, answer func(r received) (reply string, last bool)) *keepAlive {
	s := &keepAlive{answer: answer}
	s.addr = serve(t, func(c net.Conn) {
		s.open.Add(1)
		defer s.open.Add(-1)
		r := received{conn: int(s.conns.Add(1))}
		br := bufio.NewReader(c)
		for {
			line, closing, ok := readHead(br)
			if !ok {
				return
			}
			r.n++
			r.line, r.close = line, closing
			s.mu.Lock()
			s.log = append(s.log, r)
			s.mu.Unlock()
			out, last := s.answer(r)
			if _, err := c.Write([]byte(out)); err != nil || last || closing {
				return
			}
		}
	})
	return s
}

func (s *keepAlive) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.log...)
}

// readHead reads a request head: its request line and whether it asked
// for Connection: close.
func readHead(br *bufio.Reader) (line string, closing, ok bool) {
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return "", false, false
		}
		l = strings.TrimSpace(l)
		switch {
		case l == "" && line != "":
			return line, closing, true
		case line == "":
			line = l
		case strings.EqualFold(l, "Connection: close"):
			closing = true
		}
	}
}

const ok200 = "HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\nSuccessfully Running\n"

// always answers every request with resp and keeps the connection open.
func always(resp string) func(received) (string, bool) {
	return func(received) (string, bool) { return resp, false }
}

// okFor is ok200, without its body for HEAD.
func okFor(r received) (string, bool) {
	if strings.HasPrefix(r.line, "HEAD ") {
		return strings.TrimSuffix(ok200, "Successfully Running\n"), false
	}
	return ok200, false
}

// lastN waits for n results and returns them, oldest first.
func lastN(t *testing.T, c *Checker, n int) []Result {
	t.Helper()
	eventually(t, fmt.Sprint(n, " checks"), func() bool { return len(c.Results()) >= n })
	return c.Results()[:n]
}

// connections checks that rs ran on kept connections, each serving
// checks until its Max, then a new one: the first with a random Max of at
// most most, later ones most. It returns how many connections rs used.
func connections(t *testing.T, rs []Result, most int) int {
	t.Helper()
	n := 0
	for i, r := range rs {
		if !r.OK {
			t.Errorf("check %d: got %q, want a pass", i+1, r.Reason)
		}
		want := Connection{Check: 1, Max: most}
		switch {
		case i == 0:
			want.Max = r.Conn.Max
			if r.Conn.Max < 1 || r.Conn.Max > most {
				t.Errorf("check 1: got %v, want a first connection of at most %d checks", r.Conn, most)
			}
		case rs[i-1].Conn.Check < rs[i-1].Conn.Max:
			want = Connection{Check: rs[i-1].Conn.Check + 1, Max: rs[i-1].Conn.Max}
		}
		if r.Conn != want {
			t.Errorf("check %d: got %v after %v, want %v", i+1, r.Conn, rs[max(i-1, 0)].Conn, want)
		}
		if r.Conn.Check == 1 {
			n++
		}
	}
	return n
}

func TestReuseAcrossChecks(t *testing.T) {
	for _, method := range []string{"HEAD", "GET"} {
		t.Run(method, func(t *testing.T) {
			s := serveKeepAlive(t, okFor)
			c := checkOne(t, s.addr, Options{Type: TypeHTTP, Method: method, ReuseMax: 3}, 8)
			rs := lastN(t, c, 8)
			conns := connections(t, rs, 3)
			// The server saw the same: request n of connection k, the last
			// of each with Connection: close.
			for i, r := range s.requests()[:8] {
				want := received{conn: conns - countFrom(rs, i), n: rs[i].Conn.Check, close: rs[i].Conn.Check == rs[i].Conn.Max}
				if r.conn != want.conn || r.n != want.n || r.close != want.close {
					t.Errorf("request %d: got connection %d request %d close %v, want %d %d %v", i+1, r.conn, r.n, r.close, want.conn, want.n, want.close)
				}
			}
			var b bytes.Buffer
			reused := slices.IndexFunc(rs, func(r Result) bool { return r.Conn.Reused() })
			if err := WriteTranscript(&b, s.addr, c.Options(), rs[reused]); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("on a %s\n", rs[reused].Conn); !strings.Contains(b.String(), want) || !strings.HasPrefix(want, "on a reused connection (check ") {
				t.Errorf("transcript lacks %q:\n%s", want, b.String())
			}
			// Only the newest pass keeps its evidence: wait for one on a
			// reused connection that is not its last check.
			var last Result
			eventually(t, "a newest result on a reused connection", func() bool {
				last, _ = c.Last()
				return last.Conn.Reused() && last.Conn.Check < last.Conn.Max
			})
			if len(last.Segments) == 0 || last.Segments[0].Dir != DirSent || strings.Contains(string(last.Sent), "Connection: close") {
				t.Errorf("got evidence %q, want the keep-alive request first", last.Sent)
			}
		})
	}
}

// countFrom counts the new connections in rs after index i: connection
// numbers counted back from the last.
func countFrom(rs []Result, i int) int {
	n := 0
	for _, r := range rs[i+1:] {
		if r.Conn.Check == 1 {
			n++
		}
	}
	return n
}

// A server that closes idle connections (here: after every reply, without
// saying so) costs a retry on a new connection, never a failure.
func TestReuseServerClosedIdle(t *testing.T) {
	closing := serve(t, reply(ok200))
	var downs atomic.Int32
	g := startGroup(t, Config{OnChange: func(ch Change) {
		if ch.To != Up {
			downs.Add(1)
		}
	}}, Spec{Pool: "app", Target: &fakeTarget{name: "a", addr: closing}, Options: fast(Options{Type: TypeHTTP, Method: "GET"})})
	c := g.Checker("app", "a")
	rs := lastN(t, c, 5)
	if n := downs.Load(); n != 0 {
		t.Errorf("got %d transitions away from up, want none", n)
	}
	for i, r := range rs {
		if !r.OK || r.Conn.Check != 1 {
			t.Errorf("check %d: got %v %q on %v, want a pass on a new connection", i+1, r.OK, r.Reason, r.Conn)
		}
	}
	r := rs[len(rs)-1]
	note := "reused connection (check 2 of 10): connection "
	if len(r.Notes) == 0 || !strings.HasPrefix(r.Notes[0], note) || !strings.HasSuffix(r.Notes[0], "; retried on a new connection") {
		t.Errorf("got notes %q, want %q...; retried on a new connection", r.Notes, note)
	}
	if n := strings.Count(string(r.Sent), "GET / HTTP/1.1\r\n"); n != 2 {
		t.Errorf("got %d requests in the evidence %q, want both attempts", n, r.Sent)
	}
	var dirs []Dir
	for _, s := range r.Segments {
		dirs = append(dirs, s.Dir)
	}
	if want := []Dir{DirSent, DirRetry, DirSent, DirReceived}; !slices.Equal(dirs, want) {
		t.Errorf("got segments %v, want %v", dirs, want)
	}
	var b bytes.Buffer
	if err := WriteTranscript(&b, closing, c.Options(), r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"on a new connection (check 1 of 10)\n> segment 1: sent 85 bytes at offset 0",
		"\n= the reused connection was closed by the server; retry on a new connection, +", "\n> segment 2: sent 85 bytes at offset 85"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("transcript lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReuseEndsOnDoubt(t *testing.T) {
	tests := []struct {
		name, resp, note string
	}{
		{"HTTP/1.0 close-delimited", "HTTP/1.0 200 OK\r\n\r\nSuccessfully Running\n", "the reply ended with the connection"},
		{"HTTP/1.1 close-delimited", "HTTP/1.1 200 OK\r\n\r\nSuccessfully Running\n", "the reply ended with the connection"},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 21\r\n\r\nSuccessfully Running\n", "the server sent Connection: close"},
		{"HTTP/1.0 with length", "HTTP/1.0 200 OK\r\nContent-Length: 21\r\n\r\nSuccessfully Running\n", "HTTP/1.0 reply"},
		{"bytes after the reply", ok200 + "extra", "5 unexpected bytes after the reply"},
		{"short Keep-Alive timeout", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1, max=100\r\nContent-Length: 21\r\n\r\nSuccessfully Running\n",
			"the server closes it after 1s idle (Keep-Alive: timeout=1, max=100), before the next check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The server keeps the connection open whatever it said (but
			// must close to end a body without length): only the client's
			// reading of the reply decides.
			delimited := strings.Contains(tt.name, "close-delimited")
			s := serveKeepAlive(t, func(received) (string, bool) { return tt.resp, delimited })
			c := checkOne(t, s.addr, Options{Type: TypeHTTP, Method: "GET", BodyMatch: re("Running")}, 3)
			for i, r := range lastN(t, c, 3) {
				if !r.OK || r.Conn.Check != 1 {
					t.Errorf("check %d: got %v %q on %v, want a pass on a new connection", i+1, r.OK, r.Reason, r.Conn)
				}
				// A first connection may be meant for one check only.
				if want := "connection not kept: " + tt.note; r.Conn.Max > 1 && !contains(r.Notes, want) || i > 0 && r.Conn.Max == 1 {
					t.Errorf("check %d: got notes %q, want %q", i+1, r.Notes, want)
				}
			}
			for _, r := range s.requests()[:3] {
				if r.n != 1 {
					t.Errorf("got request %d on connection %d, want one request per connection", r.n, r.conn)
				}
			}
		})
	}
}

func TestReuseLongKeepAliveTimeout(t *testing.T) {
	s := serveKeepAlive(t, always("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n"))
	c := checkOne(t, s.addr, Options{Type: TypeHTTP}, 4)
	connections(t, lastN(t, c, 4), DefaultReuseMax)
}

func TestReuseChunked(t *testing.T) {
	page := "<html>COLDFUSION Successfully Running</html>"
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n", 10, page[:10], len(page)-10, page[10:])
	s := serveKeepAlive(t, always(chunked))
	c := checkOne(t, s.addr, Options{Type: TypeHTTP, Method: "GET", Hash: true, BodyMatch: re("Successfully Running")}, 4)
	rs := lastN(t, c, 4)
	for i, r := range rs {
		if !strings.Contains(r.Reason, "(chunked)") {
			t.Errorf("check %d: got %q, want a chunked body", i+1, r.Reason)
		}
	}
	conns := connections(t, rs, DefaultReuseMax)
	if want := bodyHash([]byte(page), Options{}); c.ReferenceHash() != want {
		t.Errorf("got reference hash %s, want the decoded page's %s", c.ReferenceHash(), want)
	}
	if n := len(s.requests()); n < 4 || s.requests()[3].conn != conns {
		t.Errorf("got the 4th request on connection %d, want %d", s.requests()[3].conn, conns)
	}
}

func TestReuseGarbageOnSecondRequest(t *testing.T) {
	s := serveKeepAlive(t, func(r received) (string, bool) {
		if r.n == 2 {
			return "garbage\r\n", false
		}
		return okFor(r)
	})
	c := checkOne(t, s.addr, Options{Type: TypeHTTP}, 4)
	rs := lastN(t, c, 4)
	i := slices.IndexFunc(rs, func(r Result) bool { return !r.OK })
	if i < 0 || i == len(rs)-1 {
		t.Fatalf("got no failure followed by a check in %+v", rs)
	}
	want := fmt.Sprintf(`not an HTTP response: starts with "garbage\r\n" (reused connection, check 2 of %d)`, rs[i].Conn.Max)
	if rs[i].Reason != want || rs[i].Conn.Check != 2 {
		t.Errorf("got %q on %v, want %q", rs[i].Reason, rs[i].Conn, want)
	}
	if h := c.History(); len(h) == 0 || h[0].To != Down || !strings.HasPrefix(h[0].Reason, want) {
		t.Errorf("got history %+v, want down with %q", h, want)
	}
	if next := rs[i+1]; !next.OK || next.Conn.Check != 1 {
		t.Errorf("got %v %q on %v after the failure, want a pass on a new connection", next.OK, next.Reason, next.Conn)
	}
}

// Silence on a reused connection is a timeout, not a closed connection:
// no retry.
func TestReuseTimeout(t *testing.T) {
	s := serveKeepAlive(t, func(r received) (string, bool) {
		if r.n == 2 {
			time.Sleep(300 * time.Millisecond)
		}
		return okFor(r)
	})
	c := checkOne(t, s.addr, Options{Type: TypeHTTP, Timeout: 100 * time.Millisecond}, 4)
	rs := lastN(t, c, 4)
	i := slices.IndexFunc(rs, func(r Result) bool { return !r.OK })
	if i < 0 {
		t.Fatalf("got no failure in %+v", rs)
	}
	if want := fmt.Sprintf("timeout after 100ms waiting for response head (reused connection, check 2 of %d)", rs[i].Conn.Max); rs[i].Reason != want {
		t.Errorf("got %q, want %q", rs[i].Reason, want)
	}
}

// The safeguard: a server whose accept path died while an old connection
// still answers goes down once that connection has served reuse_max checks.
func TestReuseMaxFindsDeadAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		conn, err := ln.Accept()
		ln.Close() // no more connections: refused from now on
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			if _, _, ok := readHead(br); !ok {
				return
			}
			// HEAD: no body. Ignores Connection: close, keeps answering.
			conn.Write([]byte(strings.TrimSuffix(ok200, "Successfully Running\n")))
		}
	}()
	t.Cleanup(func() { ln.Close(); <-served })
	c := checkOne(t, ln.Addr().String(), Options{Type: TypeHTTP, ReuseMax: 3}, 4)
	rs := lastN(t, c, 4)
	n := rs[0].Conn.Max // the first connection's share, 1..3
	for i, r := range rs[:n] {
		if !r.OK {
			t.Errorf("check %d: got %q, want a pass on the old connection", i+1, r.Reason)
		}
	}
	if r := rs[n]; r.OK || r.Reason != "connection refused" {
		t.Errorf("check %d: got %v %q, want a failure: connection refused", n+1, r.OK, r.Reason)
	}
}

func TestNoReuse(t *testing.T) {
	s := serveKeepAlive(t, okFor)
	c := checkOne(t, s.addr, Options{Type: TypeHTTP, ReuseMax: 1}, 3)
	for i, r := range lastN(t, c, 3) {
		if !r.OK || r.Conn != (Connection{Check: 1, Max: 1}) || len(r.Notes) != 0 {
			t.Errorf("check %d: got %v %q on %v notes %q, want a pass on a new connection", i+1, r.OK, r.Reason, r.Conn, r.Notes)
		}
	}
	for _, r := range s.requests()[:3] {
		if r.n != 1 || !r.close {
			t.Errorf("got request %d on connection %d (close %v), want one request with Connection: close per connection", r.n, r.conn, r.close)
		}
	}
}

// Probe (fulcrum probe) always uses one new connection, whatever ReuseMax.
func TestProbeDoesNotReuse(t *testing.T) {
	s := serveKeepAlive(t, okFor)
	r := Probe(context.Background(), nil, s.addr, Options{Type: TypeHTTP, ReuseMax: 10}.WithDefaults())
	if !r.OK || r.Conn.String() != "new connection" || !strings.Contains(string(r.Sent), "Connection: close\r\n") {
		t.Errorf("got %v %q on %q sent %q, want a pass on a new connection with Connection: close", r.OK, r.Reason, r.Conn, r.Sent)
	}
}

// Kept connections belong to their checker: stopping it (Group.Stop, a
// removed server, changed options) closes them.
func TestKeptConnectionsClosed(t *testing.T) {
	s := serveKeepAlive(t, okFor)
	before := runtime.NumGoroutine()
	g := NewGroup(Config{})
	spec := func(name string, o Options) Spec {
		return Spec{Pool: "app", Target: &fakeTarget{name: name, addr: s.addr}, Options: fast(o)}
	}
	o := Options{Type: TypeHTTP, ReuseMax: MaxReuseMax}
	specs := []Spec{spec("a", o), spec("b", o), spec("c", o)}
	if err := g.Update(specs); err != nil {
		t.Fatal(err)
	}
	g.Start(context.Background())
	for _, c := range g.Checkers() {
		eventually(t, "a check of "+c.Name(), func() bool { _, ok := c.Last(); return ok })
	}
	eventually(t, "three kept connections", func() bool { return s.open.Load() == 3 })

	// b removed, c's options changed: their connections close.
	o2 := o
	o2.Path = "/other"
	if err := g.Update([]Spec{specs[0], spec("c", o2)}); err != nil {
		t.Fatal(err)
	}
	c2 := g.Checker("app", "c")
	eventually(t, "the new c's check", func() bool { _, ok := c2.Last(); return ok })
	eventually(t, "two kept connections", func() bool { return s.open.Load() == 2 })

	g.Stop()
	eventually(t, "every kept connection closed", func() bool { return s.open.Load() == 0 })
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func contains(notes []string, want string) bool {
	for _, n := range notes {
		if n == want {
			return true
		}
	}
	return false
}

// Literal body rules are searched as bytes; others by the regexp engine,
// with the same result.
func TestMatcher(t *testing.T) {
	body := []byte("<html>COLDFUSION Successfully Running</html>")
	for _, tt := range []struct {
		expr    string
		literal bool
		want    bool
	}{
		{"Successfully Running", true, true},
		{"404 Object Not Found", true, false},
		{"", true, true},
		{"(?i)successfully running", false, true},
		{"Running</html>$", false, true},
		{`Succ\w+ Running`, false, true},
		{"a.b", false, false},
	} {
		m := newMatcher(re(tt.expr))
		if got := m.lit != nil; got != tt.literal {
			t.Errorf("%q: got literal %v, want %v", tt.expr, got, tt.literal)
		}
		if got := m.find(body); got != tt.want || got != re(tt.expr).Match(body) {
			t.Errorf("%q: got match %v, want %v", tt.expr, got, tt.want)
		}
	}
}
