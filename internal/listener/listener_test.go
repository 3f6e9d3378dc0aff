package listener_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/listener"
)

// greeter says hello to each connection, then echoes lines until the client
// closes. It counts the connections it has been handed.
type greeter struct{ served atomic.Int64 }

func (g *greeter) ServeConn(c net.Conn) {
	defer c.Close()
	g.served.Add(1)
	io.WriteString(c, "hello\n")
	io.Copy(c, c)
}

func start(t *testing.T, opts listener.Options, h listener.ConnHandler) (*listener.Listener, chan error) {
	t.Helper()
	opts.Address = "127.0.0.1:0"
	opts.Logger = slog.New(slog.DiscardHandler)
	l, err := listener.Listen(opts, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		l.Close()
		l.Wait()
	})
	return l, served
}

// dial connects and returns the connection with a reader over it.
func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// greeted reads the greeting, waiting up to within.
func greeted(c net.Conn, r *bufio.Reader, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	defer c.SetReadDeadline(time.Time{})
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "hello\n" {
		return errors.New("unexpected greeting " + line)
	}
	return nil
}

func TestMaxConnsBoundsOpenConnections(t *testing.T) {
	g := &greeter{}
	l, _ := start(t, listener.Options{Name: "t", MaxConns: 2}, g)
	addr := l.Addr().String()
	c1, r1 := dial(t, addr)
	c2, r2 := dial(t, addr)
	for i, c := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{c1, r1}, {c2, r2}} {
		if err := greeted(c.c, c.r, 5*time.Second); err != nil {
			t.Fatalf("connection %d within the limit: %v", i+1, err)
		}
	}
	if n := l.Open(); n != 2 {
		t.Fatalf("Open() = %d, want 2", n)
	}
	// The third connection completes in the kernel's backlog but is not
	// handed to the handler while two are open.
	c3, r3 := dial(t, addr)
	err := greeted(c3, r3, 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection over max_conns 2: read %v, want no greeting yet", err)
	}
	if n := g.served.Load(); n != 2 {
		t.Fatalf("handler got %d connections, want 2", n)
	}
	// One closes: the waiting one is served.
	c1.Close()
	if err := greeted(c3, r3, 5*time.Second); err != nil {
		t.Fatalf("third connection after one closed: %v", err)
	}
	if n := l.Open(); n != 2 {
		t.Fatalf("Open() = %d, want 2", n)
	}
}

func TestCloseStopsAcceptingAndWaitWaits(t *testing.T) {
	g := &greeter{}
	l, served := start(t, listener.Options{Name: "t"}, g)
	addr := l.Addr().String()
	c, r := dial(t, addr)
	if err := greeted(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after Close")
	}
	if c2, err := net.Dial("tcp", addr); err == nil {
		c2.Close()
		t.Fatal("a new connection was accepted after Close")
	}
	// The open connection is still served.
	io.WriteString(c, "ping\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("open connection after Close: %q %v, want the echo", line, err)
	}
	waited := make(chan struct{})
	go func() { l.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while a connection was being served")
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the last connection ended")
	}
	if n := l.Open(); n != 0 {
		t.Fatalf("Open() = %d after Wait, want 0", n)
	}
}

// TestTLS: the handler gets the TLS connection after the handshake, and a
// failed handshake gives its max_conns slot back.
func TestTLS(t *testing.T) {
	cert := testCert(t)
	var sawTLS atomic.Bool
	h := handlerFunc(func(c net.Conn) {
		_, ok := c.(*tls.Conn)
		sawTLS.Store(ok)
		(&greeter{}).ServeConn(c)
	})
	l, _ := start(t, listener.Options{Name: "t", MaxConns: 1, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, h)
	addr := l.Addr().String()

	// Not TLS: the handshake fails and the connection is dropped.
	plain, pr := dial(t, addr)
	io.WriteString(plain, "GET / HTTP/1.1\r\n\r\n")
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(pr); err != nil {
		t.Fatalf("plain-text client: %v, want the connection closed", err)
	}
	for i := range 2 { // the only slot is free again, twice
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS client %d: %v", i, err)
		}
		if err := greeted(c, bufio.NewReader(c), 5*time.Second); err != nil {
			t.Fatalf("TLS client %d: %v", i, err)
		}
		c.Close()
		if !sawTLS.Load() {
			t.Fatal("handler was not given a *tls.Conn")
		}
	}
}

type handlerFunc func(net.Conn)

func (f handlerFunc) ServeConn(c net.Conn) { f(c) }

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "listener.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// parking is an AsyncConnHandler that returns at once and keeps each
// connection, as a parked one, until finish is called.
type parking struct{ done chan func() }

func (p *parking) ServeConn(c net.Conn) { panic("the listener must prefer ServeConnAsync") }
func (p *parking) ServeConnAsync(c net.Conn, done func()) {
	p.done <- func() { c.Close(); done() }
}

// TestAsyncHandlerKeepsCounting: a connection handed to ServeConnAsync is
// counted (Open, MaxConns, Wait) until its done is called, though the
// handler returned long before.
func TestAsyncHandlerKeepsCounting(t *testing.T) {
	h := &parking{done: make(chan func(), 4)}
	l, _ := start(t, listener.Options{MaxConns: 2}, h)
	dial(t, l.Addr().String())
	dial(t, l.Addr().String())
	finish := []func(){<-h.done, <-h.done}
	if got := l.Open(); got != 2 {
		t.Fatalf("Open = %d with two parked connections, want 2", got)
	}
	// MaxConns is reached: a third connection waits for a slot.
	dial(t, l.Addr().String())
	select {
	case <-h.done:
		t.Fatal("a third connection was served past MaxConns 2 while two were parked")
	case <-time.After(200 * time.Millisecond):
	}
	finish[0]()
	third := <-h.done
	finish[1]()
	third()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Open = %d after every done, want 0", l.Open())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNoTCPKeepAliveOnAccepted: accepted connections carry no TCP
// keep-alive (three setsockopt calls each that the timeouts make useless).
func TestNoTCPKeepAliveOnAccepted(t *testing.T) {
	got := make(chan int, 1)
	l, _ := start(t, listener.Options{}, handlerFunc(func(c net.Conn) {
		defer c.Close()
		raw, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			got <- -1
			return
		}
		v := -1
		raw.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) })
		got <- v
	}))
	dial(t, l.Addr().String())
	if v := <-got; v != 0 {
		t.Fatalf("SO_KEEPALIVE = %d on an accepted connection, want 0", v)
	}
}

// goid is the running goroutine's id, from its stack header.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := strings.Fields(string(b))
	return f[1]
}

// TestWorkersReused: connections one after another run on the same
// goroutine (its grown stack kept), and Close ends the idle workers.
func TestWorkersReused(t *testing.T) {
	before := runtime.NumGoroutine()
	ids := make(chan string, 10)
	l, _ := start(t, listener.Options{}, handlerFunc(func(c net.Conn) {
		ids <- goid()
		c.Close()
	}))
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		c, br := dial(t, l.Addr().String())
		seen[<-ids] = true
		br.ReadByte() // the handler closed it: EOF
		c.Close()
		time.Sleep(10 * time.Millisecond) // the worker is idle again
	}
	if len(seen) > 2 {
		t.Fatalf("10 connections in a row ran on %d goroutines: workers are not reused", len(seen))
	}
	l.Close()
	l.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+1 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d after Close, were %d: idle workers did not end", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
