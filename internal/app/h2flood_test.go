package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Fixture runs fulcrum with an https listener (HTTP/2 by ALPN) in front of
// a backend that counts the requests it gets.
func h2Fixture(t *testing.T, maxHeader string) (addr string, roots *x509.CertPool, served *atomic.Int64) {
	t.Helper()
	served = new(atomic.Int64)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(backend.Close)
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "h2.example")
	web, admin := freePort(t), freePort(t)
	start(t, fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - name: web
    listen: %s
    protocol: https
    tls: {cert: %s, key: %s}
    limits: {max_header_bytes: %s}
    pool: app
pools:
  - name: app
    keepalive: {type: none}
    servers: [{name: a, address: %q}]
`, admin, web, certFile, keyFile, maxHeader, backend.Listener.Addr().String()))
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return web, roots, served
}

// rawH2 opens an HTTP/2 connection and returns a framer over it.
func rawH2(t *testing.T, addr string, roots *x509.CertPool) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "h2.example", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

func headerBlock(extra int) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "h2.example"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i < extra; i++ {
		enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-filler-%d", i), Value: strings.Repeat("v", 100)})
	}
	return buf.Bytes()
}

// TestH2RapidReset: a client opening streams and resetting them at once
// (CVE-2023-44487) does not make fulcrum forward a flood of requests, and
// other clients keep being served meanwhile.
func TestH2RapidReset(t *testing.T) {
	addr, roots, served := h2Fixture(t, "32KiB")
	c, fr := rawH2(t, addr, roots)
	block := headerBlock(0)
	const streams = 5000
	go func() { // drain what the server sends so its writes never block
		io.Copy(io.Discard, c)
	}()
	var sent int
	for id := uint32(1); sent < streams; id += 2 {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			break // the server gave up on this connection: fine
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	// A well-behaved client is served throughout.
	client := tlsClient(t, addr, roots, true)
	code, body := fetch(t, client, "https://h2.example/", nil)
	if code != 200 || body != "ok" {
		t.Fatalf("normal client during the flood: %d %q", code, body)
	}
	time.Sleep(200 * time.Millisecond) // let cancelled streams finish
	if n := served.Load(); n > streams/4 {
		t.Fatalf("backend served %d of %d reset streams: the flood went through", n, sent)
	}
	t.Logf("%d streams opened and reset; backend served %d requests", sent, served.Load())
}

// TestH2ContinuationFlood: a header block that never ends (HEADERS without
// END_HEADERS, then endless CONTINUATION frames) is cut off at the header
// limit: the connection is closed, nothing reaches the backend.
func TestH2ContinuationFlood(t *testing.T) {
	addr, roots, served := h2Fixture(t, "16KiB")
	c, fr := rawH2(t, addr, roots)
	block := headerBlock(0)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { io.Copy(io.Discard, c); close(closed) }()
	filler := headerBlock(20)[len(block):] // ~2 KiB of more fields per frame
	var written int
	for i := 0; i < 10000; i++ {
		if err := fr.WriteContinuation(1, false, filler); err != nil {
			break
		}
		written += len(filler)
		select {
		case <-closed:
			i = 10000
		default:
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("connection still open after %d bytes of CONTINUATION frames", written)
	}
	if written > 4<<20 {
		t.Errorf("the server read %d bytes of one header block before closing", written)
	}
	if n := served.Load(); n != 0 {
		t.Fatalf("backend got %d requests from an unfinished header block", n)
	}
}

// TestShutdownWithOpenH2Connections: an HTTP/2 client that keeps its
// connection open does not hold up shutdown: it gets GOAWAY.
func TestShutdownWithOpenH2Connections(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer backend.Close()
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "h2.example")
	web, admin := freePort(t), freePort(t)
	f := start(t, fmt.Sprintf("admin: {listen: %s}\nlog: {access: false}\nlisteners:\n  - {name: web, listen: %s, protocol: https, tls: {cert: %s, key: %s}, pool: app}\npools:\n  - name: app\n    keepalive: {type: none}\n    servers: [{name: a, address: %q}]\n", admin, web, certFile, keyFile, backend.Listener.Addr().String()))
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := tlsClient(t, web, roots, true)
	if code, _ := fetch(t, client, "https://h2.example/", nil); code != 200 {
		t.Fatalf("status %d", code)
	}
	// The client's connection stays open (idle in its pool).
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- f.app.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Shutdown still waiting for an idle HTTP/2 connection")
	}
}
