package tcpproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// Config is what one TCP listener forwards with; a reload swaps it.
type Config struct {
	Listener       string
	Pool           *pool.Pool
	Picker         balance.Picker
	HashSource     bool // source_hash: key the picker by client address
	ConnectTimeout time.Duration
	Retries        int           // other servers tried after a failed connect
	Idle           time.Duration // tunnel idle timeout
	// ProxyHeader, 1 or 2, sends a PROXY protocol header of that version
	// first on every server connection; 0 sends none.
	ProxyHeader byte
	// Transparent connects to servers from the client's own address.
	Transparent bool

	Observe func(srv *pool.Server, failed bool)
}

// Handler serves the connections of one TCP listener.
type Handler struct {
	cfg    atomic.Pointer[Config]
	log    *slog.Logger
	dialer net.Dialer

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	stop  atomic.Bool
}

// NewHandler returns a handler forwarding with cfg.
func NewHandler(cfg *Config, log *slog.Logger) *Handler {
	h := &Handler{log: log, conns: make(map[net.Conn]struct{})}
	h.cfg.Store(cfg)
	return h
}

// Swap installs a new config. Open connections keep their server.
func (h *Handler) Swap(cfg *Config) { h.cfg.Store(cfg) }

// ServeConn forwards one client connection to a server and copies bytes both
// ways until both sides are done.
func (h *Handler) ServeConn(c net.Conn) {
	defer c.Close()
	h.mu.Lock()
	if h.stop.Load() {
		h.mu.Unlock()
		return
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		h.wg.Done()
	}()

	cfg := h.cfg.Load()
	in := balance.Input{}
	if cfg.HashSource {
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			in.Key, in.HasKey = balance.HashBytes(ta.IP), true
		}
	}
	var tried [8]int
	in.Tried = tried[:0]
	start := time.Now()
	for attempt := 0; attempt <= cfg.Retries; attempt++ {
		idx := cfg.Picker.Pick(&in)
		if idx < 0 {
			break
		}
		srv := cfg.Pool.Servers()[idx]
		sc, err := h.dial(cfg, c, srv.Address())
		if err != nil {
			srv.Acquire()
			srv.Release(true)
			if cfg.Observe != nil {
				cfg.Observe(srv, true)
			}
			h.log.Warn("connecting to server", "listener", cfg.Listener, "pool", cfg.Pool.Name(), "server", srv.Name(), "err", err)
			in.Tried = append(in.Tried, idx)
			continue
		}
		srv.Acquire()
		up, down, err := Pipe(c, sc, cfg.Idle)
		sc.Close()
		srv.Release(false)
		if cfg.Observe != nil {
			cfg.Observe(srv, false)
		}
		h.log.Debug("tcp connection closed", "listener", cfg.Listener, "pool", cfg.Pool.Name(), "server", srv.Name(),
			"client", c.RemoteAddr().String(), "sent", up, "received", down, "duration", time.Since(start), "err", err)
		return
	}
	h.log.Warn("no server available", "listener", cfg.Listener, "pool", cfg.Pool.Name(), "client", c.RemoteAddr().String())
}

// dial connects to a server, announcing the client when configured.
func (h *Handler) dial(cfg *Config, client net.Conn, address string) (net.Conn, error) {
	d := h.dialer
	var peer netip.AddrPort
	if ta, ok := client.RemoteAddr().(*net.TCPAddr); ok {
		peer = ta.AddrPort()
	}
	if cfg.Transparent {
		Transparent(&d, peer.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout)
	defer cancel()
	sc, err := d.DialContext(ctx, "tcp", address)
	if err != nil || cfg.ProxyHeader == 0 {
		return sc, err
	}
	hdr, err := ProxyHeader(cfg.ProxyHeader, peer, client.LocalAddr())
	if err == nil {
		sc.SetWriteDeadline(time.Now().Add(cfg.ConnectTimeout))
		_, err = sc.Write(hdr)
		sc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		sc.Close()
		return nil, fmt.Errorf("sending PROXY header: %w", err)
	}
	return sc, nil
}

// Shutdown stops taking connections and waits for open ones to finish until
// ctx ends, then closes them.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.stop.Store(true)
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.mu.Lock()
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
