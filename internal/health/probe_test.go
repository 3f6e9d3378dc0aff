package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Each case is a server from the field report; the checker must end in
// the given state with the given reason.
func TestHTTPKeepalive(t *testing.T) {
	httpGet := Options{Type: TypeHTTP, Method: "GET"}
	tests := []struct {
		name   string
		handle func(net.Conn)
		opts   Options
		want   Health
		reason string
	}{
		{"ColdFusion head split after CRLF", coldFusion, Options{Type: TypeHTTP, Method: "GET", BodyMatch: re("Successfully Running")},
			Up, "status 200, body"},
		{"ColdFusion HEAD, RST after reply", coldFusion, Options{Type: TypeHTTP}, Up, "status 200"},
		{"LF-only", reply("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"), httpGet, Up, "status 200"},
		{"200 with 404 Object Not Found body", reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/html\r\n\r\nError Occurred While Processing Request\r\n.0 404 Object Not Found\r\n"),
			Options{Type: TypeHTTP, Method: "GET", BodyReject: re("404 Object Not Found")}, Down, "body matched reject /404 Object Not Found/"},
		{"HTTP/1.0 close without Content-Length", reply("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>alive</html>"),
			Options{Type: TypeHTTP, Method: "GET", BodyMatch: re("alive")}, Up, "(close)"},
		{"slow", func(c net.Conn) { io.Copy(io.Discard, c) }, Options{Type: TypeHTTP, Timeout: 100 * time.Millisecond},
			Down, "timeout after 100ms waiting for response head"},
		{"reset", resetAfterRequest, Options{Type: TypeHTTP}, Down, "connection reset waiting for response head"},
		{"garbage", reply("SSH-2.0-OpenSSH_9.6\r\n"), Options{Type: TypeHTTP}, Down, `not an HTTP response: starts with "S`},
		{"endless head", endlessHead, Options{Type: TypeHTTP}, Down, "response head over 64 KiB"},
		{"endless body", endlessBody, httpGet, Down, "body too large"},
		{"302", reply("HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n"), Options{Type: TypeHTTP},
			Down, "status 302, want one of [200] (Location: /login)"},
		{"body_match missing", reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), Options{Type: TypeHTTP, Method: "GET", BodyMatch: re("Running")},
			Down, "body did not match /Running/"},
		{"refused", nil, Options{Type: TypeHTTP}, Down, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := refusedAddr(t)
			if tt.handle != nil {
				addr = serve(t, tt.handle)
			}
			c := checkOne(t, addr, tt.opts, 1)
			eventually(t, "state "+tt.want.String(), func() bool { return c.State() == tt.want })
			last, _ := c.Last()
			if !strings.Contains(last.Reason, tt.reason) {
				t.Errorf("got reason %q, want it to contain %q", last.Reason, tt.reason)
			}
			if tt.want == Down {
				h := c.History()
				if len(h) == 0 || !strings.Contains(h[len(h)-1].Reason, tt.reason) {
					t.Errorf("got history %+v, want the last transition to say %q", h, tt.reason)
				}
			}
		})
	}
}

// coldFusion answers like the servers in the field report: the head in two
// writes split right after a CRLF, LF-only end of head, body to close,
// then a reset.
func coldFusion(c net.Conn) {
	readRequest(c)
	c.Write([]byte(coldFusionHead))
	time.Sleep(20 * time.Millisecond) // let the first part leave as its own segment
	c.Write([]byte(coldFusionRest))
	c.(*net.TCPConn).SetLinger(0)
}

func resetAfterRequest(c net.Conn) {
	readRequest(c)
	c.(*net.TCPConn).SetLinger(0)
}

func endlessHead(c net.Conn) {
	readRequest(c)
	c.Write([]byte("HTTP/1.1 200 OK\r\n"))
	line := []byte("X-Filler: " + strings.Repeat("a", 100) + "\r\n")
	for {
		if _, err := c.Write(line); err != nil {
			return
		}
	}
}

func endlessBody(c net.Conn) {
	readRequest(c)
	c.Write([]byte("HTTP/1.0 200 OK\r\n\r\n"))
	chunk := []byte(strings.Repeat("body ", 1000))
	for {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbeRecordsSegments(t *testing.T) {
	addr := serve(t, coldFusion)
	o := Options{Type: TypeHTTP, Method: "GET"}.WithDefaults()
	r := Probe(context.Background(), nil, addr, o)
	if !r.OK {
		t.Fatalf("got %q, want a pass", r.Reason)
	}
	if !strings.HasPrefix(string(r.Sent), "GET / HTTP/1.1\r\nHost: "+addr+"\r\n") {
		t.Errorf("got sent %q", r.Sent)
	}
	if !strings.HasPrefix(string(r.Received), coldFusionHead) {
		t.Errorf("got received %q, want it to start with the head", r.Received)
	}
	var recv, total int
	for _, s := range r.Segments {
		if s.Dir == DirReceived {
			recv++
			total += s.Len
		}
	}
	if recv == 0 || total != len(r.Received) {
		t.Errorf("got %d received segments with %d bytes, want segments covering all %d bytes", recv, total, len(r.Received))
	}
	t.Logf("segments: %+v", r.Segments)
}

func TestHEADDoesNotWaitForBody(t *testing.T) {
	// The server announces a body for HEAD and keeps the connection open.
	release := make(chan struct{})
	defer close(release)
	addr := serve(t, func(c net.Conn) {
		line := readRequest(c)
		if strings.HasPrefix(line, "HEAD") {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"))
			<-release
			return
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"))
	})
	head := Probe(context.Background(), nil, addr, Options{Type: TypeHTTP, Timeout: 5 * time.Second}.WithDefaults())
	if !head.OK || head.Reason != "status 200" {
		t.Errorf("HEAD: got %v %q, want a pass without a body", head.OK, head.Reason)
	}
	get := Probe(context.Background(), nil, addr, Options{Type: TypeHTTP, Method: "GET", Hash: true}.WithDefaults())
	if !get.OK || get.Hash == "" || !strings.Contains(get.Reason, "body 4 bytes") {
		t.Errorf("GET: got %v %q hash %q, want a pass with a 4-byte body and a hash", get.OK, get.Reason, get.Hash)
	}
}

func TestChunkedHashEqualsPlain(t *testing.T) {
	page := "<html>COLDFUSION Successfully Running</html>"
	plain := serve(t, reply(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(page), page)))
	chunked := serve(t, reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 10, page[:10], len(page)-10, page[10:])))
	o := Options{Type: TypeHTTP, Method: "GET", Hash: true}.WithDefaults()
	a := Probe(context.Background(), nil, plain, o)
	b := Probe(context.Background(), nil, chunked, o)
	if !a.OK || !b.OK {
		t.Fatalf("got %q and %q, want passes", a.Reason, b.Reason)
	}
	if a.Hash != b.Hash {
		t.Errorf("got chunked hash %s, want the plain body's %s", b.Hash, a.Hash)
	}
}

func TestHashMask(t *testing.T) {
	var n atomic.Int32
	addr := serve(t, func(c net.Conn) {
		readRequest(c)
		body := fmt.Sprintf("generated 2024-01-%02d 10:00:%02d ok", n.Add(1)%28+1, n.Load()%60)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	c := checkOne(t, addr, Options{Type: TypeHTTP, Method: "GET", Hash: true, HashMask: []*regexp.Regexp{re(`\d{4}-\d\d-\d\d[ T][\d:]+`)}}, 4)
	for _, r := range c.Results() {
		if !r.OK {
			t.Errorf("got %q, want masked timestamps to keep the hash", r.Reason)
		}
	}
}

func TestChangingPageGoesDown(t *testing.T) {
	var n atomic.Int32
	addr := serve(t, func(c net.Conn) {
		readRequest(c)
		body := fmt.Sprintf("visitor %d", n.Add(1))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	c := checkOne(t, addr, Options{Type: TypeHTTP, Method: "GET", Hash: true}, 1)
	eventually(t, "down", func() bool { return c.State() == Down })
	last, _ := c.Last()
	if !strings.HasPrefix(last.Reason, "hash changed: want ") {
		t.Errorf("got reason %q, want a hash change", last.Reason)
	}
	c.Rehash()
	if c.ReferenceHash() != "" {
		t.Errorf("got reference %q after Rehash, want none", c.ReferenceHash())
	}
}

func TestSendProxy(t *testing.T) {
	got := make(chan []byte, 1)
	addr := serve(t, func(c net.Conn) {
		buf := make([]byte, 16)
		io.ReadFull(c, buf)
		got <- buf
	})
	r := Probe(context.Background(), nil, addr, Options{SendProxy: true}.WithDefaults())
	if !r.OK {
		t.Fatalf("got %q, want a pass", r.Reason)
	}
	sig := "\r\n\r\n\x00\r\nQUIT\n"
	if b := <-got; string(b[:12]) != sig || b[12] != 0x21 {
		t.Errorf("got header %q, want a PROXY v2 PROXY command", b)
	}
}
