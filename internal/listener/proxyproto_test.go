package listener

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// echoAddr answers each connection with its remote address as the handler
// sees it, then everything the client sends.
type echoAddr struct{}

func (echoAddr) ServeConn(c net.Conn) {
	defer c.Close()
	fmt.Fprintf(c, "%s\n", c.RemoteAddr())
	io.Copy(c, c)
}

func startProxyListener(t *testing.T, trusted ...string) string {
	t.Helper()
	var prefixes []netip.Prefix
	for _, p := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	l, err := Listen(Options{Name: "t", Address: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		AcceptProxy: true, TrustedProxies: prefixes, HandshakeTimeout: 2 * time.Second}, echoAddr{})
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	t.Cleanup(func() { l.Close(); l.Wait() })
	return l.Addr().String()
}

func TestAcceptProxyHeaders(t *testing.T) {
	addr := startProxyListener(t, "127.0.0.0/8")
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40000}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443}
	src6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40001}
	dst6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}
	for _, tc := range []struct {
		name     string
		version  byte
		src, dst *net.TCPAddr
	}{{"v1", 1, src, dst}, {"v2", 2, src, dst}, {"v1 ipv6", 1, src6, dst6}, {"v2 ipv6", 2, src6, dst6}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hdr, err := proxyproto.HeaderProxyFromAddrs(tc.version, tc.src, tc.dst).Format()
			if err != nil {
				t.Fatal(err)
			}
			// Header and first payload bytes in one segment: none may be
			// swallowed with the header.
			c.Write(append(hdr, "hello\n"...))
			br := bufio.NewReader(c)
			got, _ := br.ReadString('\n')
			if got != tc.src.String()+"\n" {
				t.Fatalf("handler saw remote %q, want %s", got, tc.src)
			}
			if echo, _ := br.ReadString('\n'); echo != "hello\n" {
				t.Fatalf("payload after header: %q, want hello", echo)
			}
		})
	}
}

func TestAcceptProxyRefuses(t *testing.T) {
	refused := func(t *testing.T, addr string, send []byte) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(send)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if len(b) != 0 || err != nil && !isReset(err) {
			t.Fatalf("got %q, %v; want the connection closed with nothing forwarded", b, err)
		}
	}
	hdr, _ := proxyproto.HeaderProxyFromAddrs(1, &net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 1}, &net.TCPAddr{IP: net.IPv4(5, 6, 7, 8), Port: 2}).Format()
	t.Run("untrusted", func(t *testing.T) {
		refused(t, startProxyListener(t, "10.0.0.0/8"), hdr)
	})
	trusted := startProxyListener(t, "127.0.0.0/8")
	for name, raw := range map[string]string{
		"no header":   "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"garbage v1":  "PROXY TCP4 1.2.3.4 nonsense\r\n",
		"unknown fam": "PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
		"long v1":     "PROXY TCP4 " + string(make([]byte, 200)),
		"bad v2":      "\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x0c",
	} {
		t.Run(name, func(t *testing.T) { refused(t, trusted, []byte(raw)) })
	}
}

func isReset(err error) bool {
	ne, ok := err.(*net.OpError)
	return ok && ne.Err != nil
}

func TestHeaderLen(t *testing.T) {
	for in, want := range map[string]int{
		"PROX":                                   0,
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n":     32,
		"\r\n\r\n\x00\r\n":                       0,
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c": 28,
	} {
		if got, err := headerLen([]byte(in)); err != nil || got != want {
			t.Errorf("headerLen(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"GET / ", "\r\n\r\nX", "PROXX "} {
		if _, err := headerLen([]byte(in)); err == nil {
			t.Errorf("headerLen(%q) accepted", in)
		}
	}
}

func FuzzHeaderLen(f *testing.F) {
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := headerLen(b)
		if err == nil && (n < 0 || n > maxProxyHeader) {
			t.Fatalf("length %d out of bounds", n)
		}
	})
}
