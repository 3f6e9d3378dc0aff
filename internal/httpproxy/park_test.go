package httpproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

// pathApp answers with the request's path.
func pathApp(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// idleClient is one keep-alive connection driven by hand.
type idleClient struct {
	c  net.Conn
	br *bufio.Reader
}

func dialIdle(t *testing.T, addr string) *idleClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &idleClient{c: c, br: bufio.NewReader(c)}
}

// get sends GET path and returns the body.
func (ic *idleClient) get(path string) (string, error) {
	ic.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(ic.c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(ic.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestIdleConnectionsPark: keep-alive connections idle for a second give up
// their goroutines, and each is served again, correctly, when its next
// request arrives.
func TestIdleConnectionsPark(t *testing.T) {
	f := startProxy(t, fixtureOpts{async: true, clientIdle: 30 * time.Second}, pathApp(t))
	const n = 40
	clients := make([]*idleClient, n)
	for i := range clients {
		clients[i] = dialIdle(t, f.addr)
		if got, err := clients[i].get(fmt.Sprintf("/first/%d", i)); err != nil || got != fmt.Sprintf("/first/%d", i) {
			t.Fatalf("client %d: first request got %q, %v", i, got, err)
		}
	}
	busy := runtime.NumGoroutine()
	if !waitFor(10*time.Second, func() bool { return f.handler.ParkedConns() == n }) {
		t.Fatalf("%d of %d idle connections parked", f.handler.ParkedConns(), n)
	}
	// Their goroutines are gone (the backend and the test hold the rest).
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= busy-n/2 }) {
		t.Fatalf("goroutines: %d with %d connections busy, %d after they parked: parked connections kept their goroutines",
			busy, n, runtime.NumGoroutine())
	}
	if got := f.handler.ActiveConns(); got != n {
		t.Fatalf("ActiveConns = %d while parked, want %d", got, n)
	}
	// Each is woken by its own next request, in an order unlike the
	// parking order, and served on the same connection.
	for i := n - 1; i >= 0; i-- {
		want := fmt.Sprintf("/second/%d", i)
		if got, err := clients[i].get(want); err != nil || got != want {
			t.Fatalf("client %d after parking: got %q, %v; want %q", i, got, err, want)
		}
	}
	// Busy again, then idle again: they park a second time.
	if !waitFor(10*time.Second, func() bool { return f.handler.ParkedConns() == n }) {
		t.Fatalf("%d of %d connections parked a second time", f.handler.ParkedConns(), n)
	}
	// A client that closes while parked is finished without a request.
	for _, ic := range clients[:n/2] {
		ic.c.Close()
	}
	if !waitFor(10*time.Second, func() bool { return f.handler.ActiveConns() == n-n/2 }) {
		t.Fatalf("ActiveConns = %d after %d parked clients closed, want %d", f.handler.ActiveConns(), n/2, n-n/2)
	}
}

// TestParkedKeepAliveTimeout: a parked connection still ends at the
// keep-alive timeout.
func TestParkedKeepAliveTimeout(t *testing.T) {
	f := startProxy(t, fixtureOpts{async: true, clientIdle: 2 * time.Second}, pathApp(t))
	ic := dialIdle(t, f.addr)
	if _, err := ic.get("/"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return f.handler.ParkedConns() == 1 }) {
		t.Fatal("the idle connection did not park")
	}
	ic.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := ic.br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on a parked connection past its keep-alive timeout: %d, %v; want EOF", n, err)
	}
	if !waitFor(5*time.Second, func() bool { return f.handler.ActiveConns() == 0 }) {
		t.Fatalf("ActiveConns = %d after the keep-alive timeout, want 0", f.handler.ActiveConns())
	}
}

// TestShutdownClosesParked: shutdown finishes parked connections at once
// (they have no goroutine to notice) and does not wait for its deadline.
func TestShutdownClosesParked(t *testing.T) {
	f := startProxy(t, fixtureOpts{async: true, clientIdle: 30 * time.Second}, pathApp(t))
	var clients []*idleClient
	for i := 0; i < 5; i++ {
		ic := dialIdle(t, f.addr)
		if _, err := ic.get("/"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, ic)
	}
	if !waitFor(5*time.Second, func() bool { return f.handler.ParkedConns() == 5 }) {
		t.Fatal("the idle connections did not park")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.handler.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with parked connections: %v", err)
	}
	for i, ic := range clients {
		ic.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := ic.br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("client %d after shutdown: %v, want EOF", i, err)
		}
	}
}

// TestServeConnNeverParks: ServeConn's caller waits for the connection, so
// it is never parked.
func TestServeConnNeverParks(t *testing.T) {
	f := startProxy(t, fixtureOpts{clientIdle: 30 * time.Second}, pathApp(t))
	ic := dialIdle(t, f.addr)
	if _, err := ic.get("/"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past parkAfter
	if n := f.handler.ParkedConns(); n != 0 {
		t.Fatalf("ServeConn connection parked (%d)", n)
	}
	if got, err := ic.get("/again"); err != nil || got != "/again" {
		t.Fatalf("second request: %q, %v", got, err)
	}
}

// TestSwapReachesIdleConnections: a request arriving on a keep-alive
// connection after Swap is served by the new config, whether the
// connection waited on its goroutine or parked.
func TestSwapReachesIdleConnections(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			f := startProxy(t, fixtureOpts{async: async, clientIdle: 30 * time.Second}, pathApp(t))
			ic := dialIdle(t, f.addr)
			if got, err := ic.get("/before"); err != nil || got != "/before" {
				t.Fatalf("before the swap: %q, %v", got, err)
			}
			if async && !waitFor(5*time.Second, func() bool { return f.handler.ParkedConns() == 1 }) {
				t.Fatal("did not park")
			}
			cfg := *f.handler.Config()
			cfg.Access = []httpproxy.AccessRule{{Allow: false}}
			f.handler.Swap(&cfg)
			ic.c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(ic.c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(ic.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 403 {
				t.Fatalf("request after the swap: %d, want 403 from the new config's deny rule", resp.StatusCode)
			}
		})
	}
}
