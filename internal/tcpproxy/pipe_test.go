package tcpproxy_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

type result struct {
	ab, ba int64
	err    error
}

// tunnel joins two connections with Pipe: bytes written on left come out of
// right and back. It returns the outer ends and Pipe's result when it ends.
func tunnel(t *testing.T, idle time.Duration) (left, right *net.TCPConn, done chan result) {
	t.Helper()
	left, a := tcpPair(t)
	b, right := tcpPair(t)
	done = make(chan result, 1)
	go func() {
		ab, ba, err := tcpproxy.Pipe(a, b, idle)
		done <- result{ab, ba, err}
	}()
	return left, right, done
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	if n, err := c.Read(b[:]); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, %v; want EOF", n, err)
	}
}

func wait(t *testing.T, done chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Pipe did not return")
		return result{}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

func TestPipeCopiesBothWays(t *testing.T) {
	left, right, done := tunnel(t, time.Minute)
	up, down := randomBytes(1<<20), randomBytes(3<<20+17)
	// Both directions at once, larger than any socket buffer.
	errs := make(chan error, 2)
	go func() { _, err := left.Write(up); errs <- err }()
	go func() { _, err := right.Write(down); errs <- err }()
	gotDown := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(down))
		io.ReadFull(left, b)
		gotDown <- b
	}()
	if got := readN(t, right, len(up)); !bytes.Equal(got, up) {
		t.Fatal("left to right: bytes altered")
	}
	if got := <-gotDown; !bytes.Equal(got, down) {
		t.Fatal("right to left: bytes altered")
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	left.CloseWrite()
	right.CloseWrite()
	expectEOF(t, left)
	expectEOF(t, right)
	r := wait(t, done)
	if r.err != nil || r.ab != int64(len(up)) || r.ba != int64(len(down)) {
		t.Fatalf("Pipe = %d, %d, %v; want %d, %d, nil", r.ab, r.ba, r.err, len(up), len(down))
	}
}

func TestPipeHalfClose(t *testing.T) {
	left, right, done := tunnel(t, time.Minute)
	io.WriteString(left, "request")
	readN(t, right, len("request"))
	// Left is done sending: right sees EOF ...
	left.CloseWrite()
	expectEOF(t, right)
	// ... and can still answer, at length.
	reply := randomBytes(2 << 20)
	go right.Write(reply)
	if got := readN(t, left, len(reply)); !bytes.Equal(got, reply) {
		t.Fatal("reply after half-close altered")
	}
	select {
	case r := <-done:
		t.Fatalf("Pipe returned %+v while one direction was still open", r)
	default:
	}
	right.CloseWrite()
	expectEOF(t, left)
	r := wait(t, done)
	if r.err != nil || r.ab != int64(len("request")) || r.ba != int64(len(reply)) {
		t.Fatalf("Pipe = %d, %d, %v; want %d, %d, nil", r.ab, r.ba, r.err, len("request"), len(reply))
	}
}

func TestPipeIdleTimeoutCutsSilentTunnel(t *testing.T) {
	_, _, done := tunnel(t, 100*time.Millisecond)
	r := wait(t, done)
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent tunnel: Pipe returned %v, want a deadline error", r.err)
	}
}

// TestPipeBusyDirectionKeepsQuietOneAlive: traffic one way for several idle
// periods keeps the tunnel up, the silent direction included; once both are
// silent for idle, it is cut.
func TestPipeBusyDirectionKeepsQuietOneAlive(t *testing.T) {
	const idle = 500 * time.Millisecond
	left, right, done := tunnel(t, idle)
	stop := time.Now().Add(3 * idle)
	for time.Now().Before(stop) {
		if _, err := left.Write([]byte{'x'}); err != nil {
			t.Fatalf("busy direction: %v", err)
		}
		readN(t, right, 1)
		time.Sleep(idle / 10) // the traffic's pace, not a wait for a result
	}
	// The direction that stayed silent throughout still works.
	io.WriteString(right, "still here")
	if got := readN(t, left, len("still here")); string(got) != "still here" {
		t.Fatalf("quiet direction: got %q", got)
	}
	r := wait(t, done)
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("after traffic stopped: Pipe returned %v, want a deadline error", r.err)
	}
}

// TestPipeResetEndsTunnel: when one end resets, the tunnel ends at once (the
// other direction is not left waiting for the idle timeout), whichever
// direction sees the failure.
func TestPipeResetEndsTunnel(t *testing.T) {
	for _, side := range []string{"left", "right"} {
		t.Run(side+" resets", func(t *testing.T) {
			left, right, done := tunnel(t, time.Hour)
			io.WriteString(left, "x")
			readN(t, right, 1)
			io.WriteString(right, "y")
			readN(t, left, 1)
			reset := right
			if side == "left" {
				reset = left
			}
			reset.SetLinger(0) // close with RST
			reset.Close()
			if r := wait(t, done); r.err == nil {
				t.Fatalf("Pipe = %+v after a reset, want an error", r)
			}
		})
	}
}
