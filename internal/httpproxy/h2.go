package httpproxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"

	"github.com/fulcrumlb/fulcrum/internal/workers"
)

// H2Switch serves a TLS listener's connections: those that negotiated h2 by
// ALPN go through fulcrum's HTTP/2 frame loop (h2conn.go) and then the same
// forwarding core as HTTP/1.1; the rest go straight to the HTTP/1.1
// handler.
//
// Each HTTP/2 stream is handed to the HTTP/1.1 core as one request on the
// stream's own goroutine (a streamConn reads it as an HTTP/1.1 head and
// turns the core's response into frames), so routing, balancing, retries,
// forwarding headers and error mapping are the same code for both
// protocols.
type H2Switch struct {
	h       *Handler
	log     *slog.Logger
	streams *workers.Pool[*streamConn] // streams run on reused goroutines

	mu       sync.Mutex
	conns    map[*h2conn]struct{}
	draining bool
	wg       sync.WaitGroup
}

// NewH2Switch returns a switch in front of h.
func NewH2Switch(h *Handler, log *slog.Logger) *H2Switch {
	return &H2Switch{h: h, log: log, conns: map[*h2conn]struct{}{}, streams: workers.New(h2MaxStreams, runStream)}
}

// ServeConn serves one accepted (TLS) connection.
func (s *H2Switch) ServeConn(c net.Conn) {
	tc, ok := c.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != "h2" {
		s.h.ServeConn(c)
		return
	}
	defer c.Close()
	hc := newH2Conn(s, c)
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return
	}
	s.conns[hc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, hc)
		s.mu.Unlock()
		s.wg.Done()
	}()
	hc.serve()
}

// Shutdown sends GOAWAY on every HTTP/2 connection, lets their streams
// finish until ctx ends, then closes what is left.
func (s *H2Switch) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*h2conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.streams.Close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.conn.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
