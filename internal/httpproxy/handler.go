// Package httpproxy forwards HTTP/1.1 (and, through the h2 bridge, HTTP/2)
// requests to the servers of a pool.
//
// It is a purpose-built HTTP/1.1 proxy codec rather than net/http's reverse
// proxy: request heads are parsed in place in a per-connection buffer,
// strictly (an ambiguous request is refused, never forwarded); the outbound
// head is written into a reused buffer; bodies stream both ways (spliced by
// the kernel where it can); server connections are pooled. Each client
// connection is served by its own goroutine and no other.
package httpproxy

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/internal/route"
)

// Config is what one HTTP listener forwards with. It is immutable; a reload
// swaps in a new one while requests in flight finish with the old.
type Config struct {
	Listener    string
	Routes      *route.Table
	RouteNames  []string       // for logs, by rule index
	CORS        []*CORS        // by rule index; nil entries: no policy
	Access      []AccessRule   // the listener's, before routing
	RouteAccess [][]AccessRule // by rule index, after the listener's

	// Limits holds per-client rates and connection counts (nil: none).
	Limits         *limit.Table
	Rate           limit.Rate   // per client, the listener's
	RouteRate      []limit.Rate // per client, by rule index
	ConnsPerClient int          // open connections per client address; 0: unlimited
	Targets        []*Target    // by route target index
	TLS            bool         // the listener terminates TLS (X-Forwarded-Proto: https)

	ClientHeader   time.Duration // whole request head must arrive within this
	ClientIdle     time.Duration // keep-alive wait for the next request
	ClientBody     time.Duration // longest stall while reading a request body
	TunnelIdle     time.Duration // WebSocket idle timeout
	MaxHeaderBytes int
	MaxBody        int64 // 0: unlimited

	// TrustedProxies are the peers whose forwarding headers (X-Forwarded-*,
	// Forwarded) are believed and extended rather than dropped; the client
	// address is then the rightmost untrusted one they name. Empty trusts
	// no one.
	TrustedProxies []netip.Prefix
}

// HashBy selects the key that hash balancing uses.
type HashBy uint8

const (
	HashNone   HashBy = iota
	HashSource        // client address
	HashURI           // request path and query
	HashHeader        // value of Target.HashHeader
)

// Target is a pool as the forwarder sees it: servers, picker and options.
type Target struct {
	Pool       *pool.Pool
	Picker     balance.Picker
	Upstreams  []*Upstream // parallel to Pool.Servers()
	HashBy     HashBy
	HashHeader string

	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	Retries         int
	ClientIP        ClientIP // how servers learn the client's address
	Persist         *Persistence

	// Observe, when set, learns of each exchange with a server: passive
	// health counts failures toward fall.
	Observe func(srv *pool.Server, failed bool)
}

// AccessRecord is one access log line.
type AccessRecord struct {
	Client   string
	Method   string
	Host     string
	Path     string
	Listener string
	Route    string
	Pool     string
	Server   string
	Status   int
	Bytes    int64
	Duration time.Duration
	Err      error
}

// Handler serves the client connections of one HTTP listener.
type Handler struct {
	cfg    atomic.Pointer[Config]
	log    *slog.Logger
	access func(*AccessRecord) // nil: no access log
	dialer net.Dialer

	mu       sync.Mutex
	conns    map[*live]struct{}
	draining atomic.Bool
	wg       sync.WaitGroup
}

// NewHandler returns a handler forwarding with cfg. access, when not nil,
// receives one record per request.
func NewHandler(cfg *Config, log *slog.Logger, access func(*AccessRecord)) *Handler {
	h := &Handler{log: log, access: access, conns: make(map[*live]struct{})}
	h.dialer.KeepAlive = 30 * time.Second
	h.cfg.Store(cfg)
	return h
}

// Swap installs a new config; requests in flight finish with the old one.
func (h *Handler) Swap(cfg *Config) { h.cfg.Store(cfg) }

// Config returns the config in use.
func (h *Handler) Config() *Config { return h.cfg.Load() }

// ServeConn serves one client connection until it closes, times out or the
// handler shuts down. It returns when the connection is finished; the
// connection never parks (see ServeConnAsync).
func (h *Handler) ServeConn(c net.Conn) {
	if l := h.accept(c, nil); l != nil {
		l.noPark = true
		l.run()
	}
}

// ServeConnAsync serves one client connection like ServeConn, but may
// return while the connection is still open: an idle keep-alive connection
// is parked without a goroutine (see park.go) and served again when its next
// request arrives. done is called once, when the connection is finished.
func (h *Handler) ServeConnAsync(c net.Conn, done func()) {
	if l := h.accept(c, done); l != nil {
		l.run()
	}
}

// accept tracks a new connection and counts it against the per-client
// connection limit; nil means it was refused (and is finished).
func (h *Handler) accept(c net.Conn, done func()) *live {
	l := &live{h: h, conn: c, done: done}
	if _, ok := c.(syscall.Conn); !ok {
		l.noPark = true // TLS, pipes: no socket to watch
	}
	if !h.track(l) {
		c.Close()
		if done != nil {
			done()
		}
		return nil
	}
	if cfg := h.cfg.Load(); cfg.Limits != nil && cfg.ConnsPerClient > 0 {
		peer := peerAddr(c)
		if !cfg.Limits.Open(peer, cfg.ConnsPerClient) {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(tooManyConns)
			l.finish()
			return nil
		}
		l.limited, l.peer = cfg.Limits, peer
	}
	return l
}

// peerAddr is the connection's remote address as the client identity
// starts from it.
func peerAddr(c net.Conn) netip.Addr {
	var id identity
	id.init(c, nil)
	return id.peer.Addr()
}

func (h *Handler) track(l *live) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining.Load() {
		return false
	}
	h.conns[l] = struct{}{}
	h.wg.Add(1)
	return true
}

func (h *Handler) untrack(l *live) {
	h.mu.Lock()
	delete(h.conns, l)
	h.mu.Unlock()
	h.wg.Done()
}

// Shutdown stops serving: idle connections close now, busy ones after their
// current exchange. When ctx ends first, the rest are closed.
func (h *Handler) Shutdown(ctx context.Context) error {
	// Under the lock: a connection either was tracked before (and is waited
	// for) or sees draining and is refused; none is added while we wait.
	h.mu.Lock()
	h.draining.Store(true)
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		h.closeIdle()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			h.mu.Lock()
			conns := make([]*live, 0, len(h.conns))
			for l := range h.conns {
				conns = append(conns, l)
			}
			h.mu.Unlock()
			closeAll(conns, true)
			h.closeParked(true) // parked ones have no goroutine to notice
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request: those waiting on
// their goroutine see the close; parked ones are claimed back from the
// parker and finished here. Tunnels are not idle in this sense: they run
// until the shutdown deadline.
func (h *Handler) closeIdle() {
	var idle []*live
	h.mu.Lock()
	for l := range h.conns {
		if l.state.Load() == liveWaiting {
			idle = append(idle, l)
		}
	}
	h.mu.Unlock()
	closeAll(idle, false)
	h.closeParked(false)
}

// closeAll closes the connections (and, with tunnels, their tunnels'
// server sides), outside the handler's lock and each on a goroutine of its
// own: net.Conn.Close waits until no call holds the descriptor, and a
// connection that woke just now may be serving a request from inside its
// poller callback (serveInline) until the exchange ends.
func closeAll(conns []*live, tunnels bool) {
	for _, l := range conns {
		go func() {
			l.conn.Close()
			if r := l.tun.Load(); tunnels && r != nil {
				r.uc.conn.Close()
			}
		}()
	}
}

// closeParked finishes the parked connections (and, with tunnels, the
// parked tunnels).
func (h *Handler) closeParked(tunnels bool) {
	var parked []*live
	h.mu.Lock()
	for l := range h.conns {
		if l.state.Load() == liveParked && (tunnels || l.tun.Load() == nil) {
			parked = append(parked, l)
		}
	}
	h.mu.Unlock()
	if len(parked) == 0 {
		return
	}
	p := getParker()
	for _, l := range parked {
		if p.claim(l) {
			l.finish()
		}
	}
}

// ActiveConns is the number of client connections open.
func (h *Handler) ActiveConns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// ParkedConns is the number of this handler's connections parked now
// (idle, without a goroutine).
func (h *Handler) ParkedConns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for l := range h.conns {
		if l.state.Load() == liveParked {
			n++
		}
	}
	return n
}
