// Package listener owns the accept loops: it binds addresses, bounds the
// number of open connections, terminates TLS and hands each connection to a
// handler on its own goroutine.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/workers"
)

// ConnHandler serves one accepted connection and returns when it is done.
type ConnHandler interface {
	ServeConn(c net.Conn)
}

// AsyncConnHandler is a ConnHandler that may return before the connection
// is done (an idle connection parked without a goroutine); it calls done
// once when it is. The listener keeps counting the connection until then.
type AsyncConnHandler interface {
	ConnHandler
	ServeConnAsync(c net.Conn, done func())
}

// Options describe one listener.
type Options struct {
	Name     string
	Address  string
	MaxConns int         // open connections; 0 means unlimited
	TLS      *tls.Config // nil: plain TCP
	// HandshakeTimeout bounds the TLS handshake.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
	// AcceptProxy reads a PROXY protocol v1 or v2 header first. Only
	// connections from TrustedProxies may send one; the others, and
	// malformed headers, are closed.
	AcceptProxy    bool
	TrustedProxies []netip.Prefix
}

// Listener accepts connections for a handler, which may be swapped.
type Listener struct {
	opts    Options
	ln      net.Listener
	handler atomic.Pointer[handlerBox]
	tls     atomic.Pointer[tls.Config]
	proxy   atomic.Pointer[proxyIn]
	sem     chan struct{}
	wg      sync.WaitGroup
	open    atomic.Int64
	closed  atomic.Bool
	done    chan struct{}
	workers *workers.Pool[net.Conn]
}

type handlerBox struct{ h ConnHandler }

// Listen binds the address.
func Listen(opts Options, h ConnHandler) (*Listener, error) {
	// No TCP keep-alive probes on accepted connections (Go enables them by
	// default, three setsockopt calls per connection): every client
	// connection already ends at its idle, header or tunnel timeout, and
	// HAProxy leaves them off too (option clitcpka).
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", opts.Address)
	if err != nil {
		return nil, err
	}
	l := &Listener{opts: opts, ln: ln, done: make(chan struct{})}
	l.workers = workers.New(maxIdleWorkers, l.serve)
	if opts.MaxConns > 0 {
		l.sem = make(chan struct{}, opts.MaxConns)
	}
	if opts.HandshakeTimeout <= 0 {
		l.opts.HandshakeTimeout = 10 * time.Second
	}
	l.handler.Store(&handlerBox{h})
	l.SetProxy(opts.AcceptProxy, opts.TrustedProxies)
	if opts.TLS != nil {
		l.tls.Store(opts.TLS)
	}
	return l, nil
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// SetHandler replaces the handler for new connections.
func (l *Listener) SetHandler(h ConnHandler) { l.handler.Store(&handlerBox{h}) }

// proxyIn is the PROXY protocol policy for new connections.
type proxyIn struct {
	accept  bool
	trusted []netip.Prefix
}

// SetProxy replaces the PROXY protocol policy for new connections.
func (l *Listener) SetProxy(accept bool, trusted []netip.Prefix) {
	l.proxy.Store(&proxyIn{accept: accept, trusted: trusted})
}

// SetTLS replaces the TLS config for new connections (certificate reload).
func (l *Listener) SetTLS(c *tls.Config) { l.tls.Store(c) }

// Open is the number of connections being served.
func (l *Listener) Open() int64 { return l.open.Load() }

// Serve accepts until Close. Each connection runs on a goroutine of its own
// (reused for later connections, see internal/workers); Wait waits for them.
func (l *Listener) Serve() error {
	var backoff time.Duration
	for {
		if l.sem != nil {
			select {
			case l.sem <- struct{}{}:
			case <-l.done:
				return nil
			}
		}
		c, err := l.ln.Accept()
		if err != nil {
			if l.sem != nil {
				<-l.sem
			}
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, keep going.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.opts.Logger.Warn("accept failed", "listener", l.opts.Name, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return nil
			}
			continue
		}
		backoff = 0
		l.open.Add(1)
		l.wg.Add(1)
		l.workers.Run(c)
	}
}

func (l *Listener) serve(c net.Conn) {
	finished := func() {
		l.open.Add(-1)
		if l.sem != nil {
			<-l.sem
		}
		l.wg.Done()
	}
	async := false
	defer func() {
		if !async {
			finished()
		}
	}()
	if p := l.proxy.Load(); p.accept {
		pc, err := acceptProxy(c, p.trusted, l.opts.HandshakeTimeout)
		if err != nil {
			l.opts.Logger.Warn("connection refused", "listener", l.opts.Name, "peer", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = pc
	}
	if tc := l.tls.Load(); tc != nil {
		t := tls.Server(c, tc)
		c.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
		if err := t.HandshakeContext(context.Background()); err != nil {
			l.opts.Logger.Debug("TLS handshake failed", "listener", l.opts.Name, "client", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
		c = t
	}
	h := l.handler.Load().h
	if ah, ok := h.(AsyncConnHandler); ok {
		async = true
		ah.ServeConnAsync(c, finished)
		return
	}
	h.ServeConn(c)
}

// Close stops accepting. Connections being served go on; Wait for them.
func (l *Listener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	close(l.done)
	err := l.ln.Close()
	l.workers.Close()
	return err
}

// Wait blocks until every connection's handler has returned.
func (l *Listener) Wait() { l.wg.Wait() }
