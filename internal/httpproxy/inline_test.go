package httpproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestInlineServing covers keep-alive requests served from inside one
// poller wait (serveInline), on both of the handler's entry points: the
// listener's (connections park) and ServeConn's (they never do).
func TestInlineServing(t *testing.T) {
	for _, async := range []bool{true, false} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			testInlineServing(t, async)
		})
	}
}

func testInlineServing(t *testing.T, async bool) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	}))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{async: async, clientIdle: 3 * time.Second}, backend.Listener.Addr().String())

	read := func(t *testing.T, br *bufio.Reader, want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the response for %q: %v", want, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != want {
			t.Fatalf("got %q (%v), want %q", b, err, want)
		}
	}

	t.Run("pipelined, bodies between", func(t *testing.T) {
		// Bodyless requests are served inside the wait, the POST leaves it
		// to read its body, and the order holds.
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"+
			"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"+
			"GET /c HTTP/1.1\r\nHost: x\r\n\r\nHEAD /d HTTP/1.1\r\nHost: x\r\n\r\n"+
			"GET /e HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		read(t, br, "GET /a ")
		read(t, br, "POST /b body")
		read(t, br, "GET /c ")
		resp, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("HEAD: %v %v", resp, err)
		}
		read(t, br, "GET /e ")
		// And after a pause, on the same connection.
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
		read(t, br, "GET /f ")
	})

	t.Run("head in pieces", func(t *testing.T) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for i, piece := range []string{"GET /pie", "ces HTTP/1.1\r\nHo", "st: x\r\n", "\r\n"} {
			io.WriteString(c, piece)
			time.Sleep(20 * time.Millisecond)
			if i < 3 {
				c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				if _, err := br.Peek(1); err == nil {
					t.Fatalf("an answer before the head was complete (after piece %d)", i)
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
			}
		}
		read(t, br, "GET /pieces ")
	})

	t.Run("request then half-close", func(t *testing.T) {
		// The request and the client's FIN arrive together: the response
		// goes out, and the connection is finished (by the parker within
		// parkAfter when it can park, at once otherwise), not held to the
		// 3 s keep-alive timeout.
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /hc HTTP/1.1\r\nHost: x\r\n\r\n")
		c.(*net.TCPConn).CloseWrite()
		start := time.Now()
		br := bufio.NewReader(c)
		read(t, br, "GET /hc ")
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after the response: %v, want EOF", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a half-closed connection was finished after %v", d)
		}
	})

	t.Run("partial head then half-close", func(t *testing.T) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost:")
		c.(*net.TCPConn).CloseWrite()
		start := time.Now()
		b, _ := io.ReadAll(c)
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 400") {
			t.Fatalf("a head cut short by EOF got %q", b)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("finished after %v: the pending end of stream was not seen", d)
		}
	})
}

// TestShutdownWhileServingInline: a forced close at the shutdown deadline
// does not wait on the handler's lock for a request being served inside its
// poller wait; Shutdown returns once that exchange ends.
func TestShutdownWhileServingInline(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{async: true, responseTimeout: 10 * time.Second}, backend.Listener.Addr().String())
	slow, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	idle := dialIdle(t, f.addr)
	if got, err := idle.get("/quick"); err != nil || got != "ok" {
		t.Fatalf("quick request: %q %v", got, err)
	}
	time.Sleep(50 * time.Millisecond) // the slow request is at the backend
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.handler.Shutdown(ctx) }()
	// Past the deadline the forced close must not hold the handler's lock:
	// ActiveConns takes it.
	time.Sleep(400 * time.Millisecond)
	counted := make(chan int, 1)
	go func() { counted <- f.handler.ActiveConns() }()
	select {
	case <-counted:
	case <-time.After(2 * time.Second):
		t.Fatal("the handler's lock is held while a connection serving inline is closed")
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last exchange ended")
	}
}
