package httpproxy_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
)

// fixedBackend answers every request on a connection with the same 100-byte
// response, without parsing more than it must.
func fixedBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Read one head: lines until an empty one.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkProxyRoundTrip measures one keep-alive request through the proxy
// to a server and back: client, proxy and server share the machine, so
// compare runs, not absolute numbers. Run with -cpuprofile to see where the
// proxy spends its time.
func BenchmarkProxyRoundTrip(b *testing.B) {
	f := startProxy(b, fixtureOpts{noAccessLog: true}, fixedBackend(b))
	req := []byte("GET /api/items?id=1 HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 4096)
		body := make([]byte, 100)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			n := -1
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if len(line) == 2 {
					break
				}
				if strings.HasPrefix(string(line), "Content-Length: ") {
					n = 100
				}
			}
			if n < 0 {
				b.Error("no Content-Length")
				return
			}
			if _, err := io.ReadFull(br, body[:n]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestForwardingAllocatesNothing: in steady state a keep-alive request
// through the proxy (parse, route, balance, forward, relay) allocates
// nothing. Client and server here allocate nothing either, so the whole
// process's count is the proxy's.
func TestForwardingAllocatesNothing(t *testing.T) {
	f := startProxy(t, fixtureOpts{noAccessLog: true}, fixedBackend(t))
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /api/items?id=1 HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-For: 6.6.6.6\r\nCookie: a=b\r\n\r\n")
	br := bufio.NewReaderSize(c, 4096)
	body := make([]byte, 100)
	one := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				t.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
		}
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ { // warm up buffers and pools
		one()
	}
	if n := testing.AllocsPerRun(500, one); n != 0 {
		t.Fatalf("%v allocations per forwarded request, want 0", n)
	}
}
