package httpproxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"

	"golang.org/x/net/http2"
)

// H2Switch serves a TLS listener's connections: those that negotiated h2 by
// ALPN go through golang.org/x/net/http2 and then the same forwarding core
// as HTTP/1.1; the rest go straight to the HTTP/1.1 handler.
//
// Each HTTP/2 stream is handed to the HTTP/1.1 core as one request on the
// stream's own goroutine (a streamConn reads it as an HTTP/1.1 head and
// parses the core's response back), so routing, balancing, retries,
// forwarding headers and error mapping are the same code for both
// protocols.
type H2Switch struct {
	h   *Handler
	srv http2.Server
	hs  *http.Server // holds the HTTP/2 server's graceful-shutdown hook
	log *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewH2Switch returns a switch in front of h.
func NewH2Switch(h *Handler, log *slog.Logger) *H2Switch {
	s := &H2Switch{h: h, log: log, conns: map[net.Conn]struct{}{}, srv: http2.Server{
		MaxConcurrentStreams: 250,
		MaxReadFrameSize:     1 << 20,
	}}
	// ConfigureServer gives the HTTP/2 server its shared state, and hooks
	// GOAWAY to every connection on hs.Shutdown.
	s.hs = &http.Server{}
	http2.ConfigureServer(s.hs, &s.srv)
	return s
}

// ServeConn serves one accepted (TLS) connection.
func (s *H2Switch) ServeConn(c net.Conn) {
	tc, ok := c.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != "h2" {
		s.h.ServeConn(c)
		return
	}
	defer c.Close()
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	// The listener's header limit bounds HTTP/2 header blocks too (and so
	// CONTINUATION floods); x/net/http2 also limits streams and resets.
	base := &http.Server{MaxHeaderBytes: s.h.Config().MaxHeaderBytes}
	s.srv.ServeConn(c, &http2.ServeConnOpts{BaseConfig: base, Handler: &h2Bridge{h: s.h, remote: c.RemoteAddr(), local: c.LocalAddr()}})
}

// Shutdown sends GOAWAY on every HTTP/2 connection, lets their streams
// finish until ctx ends, then closes what is left.
func (s *H2Switch) Shutdown(ctx context.Context) error {
	s.hs.Shutdown(ctx) // runs the GOAWAY hook; it serves no listener itself
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// h2Bridge turns one HTTP/2 stream into an HTTP/1.1 exchange with the core,
// run on the stream's goroutine over a streamConn (h2stream.go).
type h2Bridge struct {
	h             *Handler
	remote, local net.Addr
}

func (b *h2Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Let the connection's frame loop run first: a RST_STREAM that came
	// right behind the HEADERS (a rapid-reset flood) is then seen before
	// anything is forwarded, here or in the core's check before sending.
	runtime.Gosched()
	if r.Context().Err() != nil {
		return // reset before it started (rapid reset): never forwarded
	}
	c := newStreamConn(w, r, b.remote, b.local)
	defer c.release()
	b.h.ServeConn(c)
	if !c.started {
		http.Error(w, "Bad Gateway", http.StatusBadGateway)
		return
	}
	if !c.complete() {
		// The core cut the response short (the server broke off): the
		// client must not take it for whole.
		panic(http.ErrAbortHandler)
	}
}
