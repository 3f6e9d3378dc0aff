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
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsEcho is a WebSocket server answering "echo: " + each message.
func wsEcho(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func wsRoundTrip(ctx context.Context, c *websocket.Conn, msg string) error {
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return err
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if string(got) != "echo: "+msg {
		return fmt.Errorf("got %q, want %q", got, "echo: "+msg)
	}
	return nil
}

// TestTunnelsPark: idle WebSocket tunnels give up both goroutines, and
// each comes back, in both directions, on its next message.
func TestTunnelsPark(t *testing.T) {
	f := startProxy(t, fixtureOpts{async: true, tunnelIdle: 30 * time.Second}, wsEcho(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 20
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/ws", nil)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.CloseNow()
		if err := wsRoundTrip(ctx, c, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatalf("tunnel %d: %v", i, err)
		}
		conns[i] = c
	}
	busy := runtime.NumGoroutine()
	if !waitFor(10*time.Second, func() bool { return f.handler.ParkedConns() == n }) {
		t.Fatalf("%d of %d idle tunnels parked", f.handler.ParkedConns(), n)
	}
	// Each tunnel had two pumping goroutines: at least that many are gone.
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= busy-2*n }) {
		t.Fatalf("goroutines: %d with %d tunnels busy, %d parked: parked tunnels kept goroutines", busy, n, runtime.NumGoroutine())
	}
	for round := 0; round < 2; round++ {
		for i := n - 1; i >= 0; i-- {
			msg := fmt.Sprintf("round %d tunnel %d %s", round, i, strings.Repeat("x", i*1000))
			if err := wsRoundTrip(ctx, conns[i], msg); err != nil {
				t.Fatalf("round %d, tunnel %d after parking: %v", round, i, err)
			}
		}
		if !waitFor(10*time.Second, func() bool { return f.handler.ParkedConns() == n }) {
			t.Fatalf("round %d: %d of %d tunnels parked again", round, f.handler.ParkedConns(), n)
		}
	}
	for _, c := range conns {
		c.Close(websocket.StatusNormalClosure, "bye")
	}
	if !waitFor(10*time.Second, func() bool { return f.handler.ActiveConns() == 0 }) {
		t.Fatalf("ActiveConns = %d after every tunnel closed", f.handler.ActiveConns())
	}
	// The access log has one record per tunnel, written when it ended,
	// with the bytes of the whole tunnel.
	got := 0
	for len(f.logs) > 0 {
		r := <-f.logs
		if r.Status == 101 {
			got++
			if r.Bytes < 100 {
				t.Errorf("tunnel record with %d bytes: the tunnel's bytes are missing", r.Bytes)
			}
		}
	}
	if got != n {
		t.Fatalf("%d access records with status 101, want %d", got, n)
	}
}

// rawUpgrade is a server that switches protocols on any request, then runs
// fn on the connection.
func rawUpgrade(t *testing.T, fn func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		fn(c, br)
	})
	return b.addr()
}

func dialUpgrade(t *testing.T, addr string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c.(*net.TCPConn), br
}

// TestParkedTunnelHalfClose: a client that half-closes while the tunnel is
// parked still gets everything the server sends afterwards, then the end.
func TestParkedTunnelHalfClose(t *testing.T) {
	serverSaw := make(chan string, 1)
	addr := rawUpgrade(t, func(c net.Conn, br *bufio.Reader) {
		b, _ := io.ReadAll(br) // until the client's half-close arrives
		serverSaw <- string(b)
		time.Sleep(600 * time.Millisecond) // the tunnel parks meanwhile
		io.WriteString(c, "after your FIN")
		c.Close()
	})
	f := startProxy(t, fixtureOpts{async: true, tunnelIdle: 30 * time.Second}, addr)
	c, br := dialUpgrade(t, f.addr)
	io.WriteString(c, "ping")
	time.Sleep(600 * time.Millisecond) // parked with both directions open
	if f.handler.ParkedConns() != 1 {
		t.Fatalf("ParkedConns = %d, want the idle tunnel parked", f.handler.ParkedConns())
	}
	c.CloseWrite()
	select {
	case got := <-serverSaw:
		if got != "ping" {
			t.Fatalf("server read %q, want ping", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the client's half-close")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "after your FIN" {
		t.Fatalf("client read %q, %v after its half-close; want the server's reply then EOF", rest, err)
	}
	if !waitFor(5*time.Second, func() bool { return f.handler.ActiveConns() == 0 }) {
		t.Fatalf("ActiveConns = %d after both sides closed", f.handler.ActiveConns())
	}
}

// TestParkedTunnelIdleTimeout: a parked tunnel still ends at its idle
// timeout, both sides closed.
func TestParkedTunnelIdleTimeout(t *testing.T) {
	serverEOF := make(chan error, 1)
	addr := rawUpgrade(t, func(c net.Conn, br *bufio.Reader) {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.ReadAll(br)
		serverEOF <- err
	})
	f := startProxy(t, fixtureOpts{async: true, tunnelIdle: 2 * time.Second}, addr)
	c, br := dialUpgrade(t, f.addr)
	if !waitFor(5*time.Second, func() bool { return f.handler.ParkedConns() == 1 }) {
		t.Fatal("the idle tunnel did not park")
	}
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("client of a tunnel idle past its timeout: %v, want EOF", err)
	}
	if err := <-serverEOF; err != nil {
		t.Fatalf("server of a tunnel idle past its timeout: %v, want EOF", err)
	}
	if !waitFor(5*time.Second, func() bool { return f.handler.ActiveConns() == 0 }) {
		t.Fatalf("ActiveConns = %d after the idle timeout", f.handler.ActiveConns())
	}
}

// TestShutdownKeepsParkedTunnels: a graceful shutdown leaves parked tunnels
// to run until its deadline (they are not idle requests), then ends them.
func TestShutdownKeepsParkedTunnels(t *testing.T) {
	f := startProxy(t, fixtureOpts{async: true, tunnelIdle: 30 * time.Second}, wsEcho(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := wsRoundTrip(ctx, c, "before"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return f.handler.ParkedConns() == 1 }) {
		t.Fatal("the idle tunnel did not park")
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	done := make(chan error, 1)
	go func() { done <- f.handler.Shutdown(sctx) }()
	time.Sleep(300 * time.Millisecond) // several closeIdle rounds
	if err := wsRoundTrip(ctx, c, "during the drain"); err != nil {
		t.Fatalf("a parked tunnel was cut by the drain before its deadline: %v", err)
	}
	if err := <-done; err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want the deadline (a tunnel was still open)", err)
	}
	if _, _, err := c.Read(ctx); err == nil {
		t.Fatal("tunnel still open after the shutdown deadline")
	}
}
