package httpproxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

// h2Front serves f's handler over TLS with HTTP/2 (the H2Switch), and
// returns a client speaking HTTP/2 to it.
func h2Front(t *testing.T, f *proxyFixture) (string, *http.Client) {
	t.Helper()
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(certSrv.Close)
	sw := httpproxy.NewH2Switch(f.handler, slog.New(slog.DiscardHandler))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certSrv.TLS.Certificates, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := c.(*tls.Conn)
				if tc.HandshakeContext(context.Background()) != nil {
					c.Close()
					return
				}
				sw.ServeConn(tc)
			}()
		}
	}()
	tr := certSrv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		sw.Shutdown(ctx)
		wg.Wait()
	})
	return "https://" + ln.Addr().String(), client
}

// TestHTTP2Bridge: HTTP/2 requests reach the HTTP/1.1 core on the stream's
// goroutine and come back whole: bodies of known and unknown length both
// ways, chunked and close-delimited replies, HEAD and 204, large bodies,
// and a reply the server cuts short is not delivered as complete.
func TestHTTP2Bridge(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Length", strconv.FormatInt(r.ContentLength, 10))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		switch r.URL.Path {
		case "/echo":
			w.Write(body)
		case "/chunked":
			for i := 0; i < 5; i++ {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
		case "/big":
			w.Write(big)
		case "/nocontent":
			w.WriteHeader(204)
		case "/cut":
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("only this"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		default:
			io.WriteString(w, "hello "+r.Method+" "+r.URL.RequestURI())
		}
	}))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	base, client := h2Front(t, f)

	do := func(method, path string, body io.Reader, length int64) (*http.Response, string, error) {
		req, _ := http.NewRequest(method, base+path, body)
		if body != nil {
			req.ContentLength = length
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	resp, got, err := do("GET", "/x?q=1", nil, 0)
	if err != nil || resp.ProtoMajor != 2 || got != "hello GET /x?q=1" {
		t.Fatalf("GET: %v %q %v", resp, got, err)
	}
	if resp, got, err := do("POST", "/echo", strings.NewReader("known length"), 12); err != nil || got != "known length" || resp.Header.Get("X-Seen-Length") != "12" {
		t.Fatalf("POST with a length: %q, %v, server saw length %s", got, err, resp.Header.Get("X-Seen-Length"))
	}
	// Unknown length: re-chunked to the server.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 50; i++ {
			fmt.Fprintf(pw, "piece %d|", i)
		}
		pw.Close()
	}()
	var want strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&want, "piece %d|", i)
	}
	if resp, got, err := do("POST", "/echo", pr, -1); err != nil || got != want.String() {
		t.Fatalf("POST of unknown length: %q (%d bytes), %v; server saw length %s", got[:min(len(got), 40)], len(got), err, resp.Header.Get("X-Seen-Length"))
	}
	if _, got, err := do("POST", "/echo", bytes.NewReader(big), int64(len(big))); err != nil || got != string(big) {
		t.Fatalf("1 MiB upload: %d bytes back, %v", len(got), err)
	}
	if _, got, err := do("GET", "/chunked", nil, 0); err != nil || got != "part 0;part 1;part 2;part 3;part 4;" {
		t.Fatalf("chunked reply: %q, %v", got, err)
	}
	if _, got, err := do("GET", "/big", nil, 0); err != nil || got != string(big) {
		t.Fatalf("1 MiB download: %d bytes, %v", len(got), err)
	}
	if resp, got, err := do("HEAD", "/big", nil, 0); err != nil || got != "" || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %q %v", resp, got, err)
	}
	if resp, got, err := do("GET", "/nocontent", nil, 0); err != nil || resp.StatusCode != 204 || got != "" {
		t.Fatalf("204: %v %q %v", resp, got, err)
	}
	if _, got, err := do("GET", "/cut", nil, 0); err == nil {
		t.Fatalf("a reply the server cut short arrived as complete: %q", got)
	}
	// Many streams at once on one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/s/%d", i)
			if _, got, err := do("GET", path, nil, 0); err != nil || got != "hello GET "+path {
				errs <- fmt.Errorf("stream %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHTTP2BridgeNoUnboundedGrowth: finished streams leave nothing tracked
// in the core.
func TestHTTP2BridgeNoUnboundedGrowth(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	base, client := h2Front(t, f)
	for i := 0; i < 200; i++ {
		resp, err := client.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := f.handler.ActiveConns(); n != 0 {
		t.Fatalf("%d core connections still tracked after 200 finished streams", n)
	}
}
