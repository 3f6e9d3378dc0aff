package httpproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/pires/go-proxyproto"
)

// sawHeaders returns a backend that records the forwarding fields it got.
func sawHeaders(t *testing.T) (addr string, seen chan http.Header) {
	seen = make(chan http.Header, 10)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b.Listener.Addr().String(), seen
}

func TestTrustedProxyChain(t *testing.T) {
	addr, seen := sawHeaders(t)
	f := startProxy(t, fixtureOpts{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}, addr)
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/", nil)
	// A forged entry, the real client, then a trusted inner proxy.
	req.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.9, 10.1.2.3")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	if got, want := h.Get("X-Forwarded-For"), "6.6.6.6, 198.51.100.9, 10.1.2.3, 127.0.0.1"; got != want {
		t.Errorf("X-Forwarded-For = %q, want %q (the chain extended)", got, want)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want the trusted proxy's https", got)
	}
	if rec := <-f.logs; rec.Client != "198.51.100.9" {
		t.Errorf("settled client = %q, want 198.51.100.9 (rightmost untrusted)", rec.Client)
	}
}

func TestUntrustedForwardingDropped(t *testing.T) {
	addr, seen := sawHeaders(t)
	f := startProxy(t, fixtureOpts{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, addr)
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want only 127.0.0.1", got)
	}
	if rec := <-f.logs; rec.Client != "127.0.0.1" {
		t.Errorf("settled client = %q, want the peer", rec.Client)
	}
}

func TestClientIPNone(t *testing.T) {
	addr, seen := sawHeaders(t)
	f := startProxy(t, fixtureOpts{clientIP: httpproxy.ClientIPNone}, addr)
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
		if v := h.Get(k); v != "" {
			t.Errorf("non-transparent mode: server saw %s: %q", k, v)
		}
	}
}

func TestClientIPProxyProtocol(t *testing.T) {
	for _, mode := range []struct {
		name    string
		m       httpproxy.ClientIP
		version byte
	}{{"v1", httpproxy.ClientIPProxyV1, 1}, {"v2", httpproxy.ClientIPProxyV2, 2}} {
		t.Run(mode.name, func(t *testing.T) {
			var mu sync.Mutex
			var sources []string
			b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				h, err := proxyproto.Read(br)
				if err != nil {
					t.Errorf("backend: no PROXY header: %v", err)
					return
				}
				if h.Version != mode.version {
					t.Errorf("PROXY version %d, want %d", h.Version, mode.version)
				}
				mu.Lock()
				sources = append(sources, h.SourceAddr.String())
				mu.Unlock()
				for {
					if _, _, err := readRequest(br); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			f := startProxy(t, fixtureOpts{clientIP: mode.m}, b.addr())
			// Two clients, three requests each on their own keep-alive
			// connection: one server connection per client, each
			// announcing its own client.
			var locals []string
			for i := 0; i < 2; i++ {
				c, err := net.Dial("tcp", f.addr)
				if err != nil {
					t.Fatal(err)
				}
				locals = append(locals, c.LocalAddr().String())
				br := bufio.NewReader(c)
				for j := 0; j < 3; j++ {
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
					resp, err := http.ReadResponse(br, nil)
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("client %d request %d: %v", i, j, err)
					}
					io.ReadAll(resp.Body)
				}
				c.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if len(sources) != 2 || sources[0] != locals[0] || sources[1] != locals[1] {
				t.Fatalf("PROXY sources %v, want one per client: %v", sources, locals)
			}
			if n := b.conns.Load(); n != 2 {
				t.Fatalf("server saw %d connections, want 2 (private, reused per client)", n)
			}
		})
	}
}
