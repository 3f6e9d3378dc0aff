// Package app is the composition root: it turns a config into a running
// graph (listeners -> routes -> pools -> balance -> forward, keepalives on
// the side, the admin API beside), reloads it, and shuts it down. It owns
// every long-lived goroutine of the process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/health"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/listener"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
	"github.com/fulcrumlb/fulcrum/keyring"
)

// Options configure an App.
type Options struct {
	// ConfigPath is re-read on Reload.
	ConfigPath string
	Logger     *slog.Logger
	// Access receives one record per request; nil disables the access log.
	Access  func(*httpproxy.AccessRecord)
	Version string
}

// App is a running fulcrum.
type App struct {
	opts   Options
	log    *slog.Logger
	health *health.Group

	reload    sync.Mutex // one reload (or shutdown) at a time
	g         atomic.Pointer[graph]
	listeners map[string]*live
	upstreams map[*pool.Server]*httpproxy.Upstream
	upMu      sync.Mutex

	adminSrv *http.Server
	adminAPI *admin.Server
	adminLn  net.Listener
	group    sync.WaitGroup
	stopped  bool

	tables  tables                       // persistence tables by pool
	ring    atomic.Pointer[keyring.Ring] // the farm's key ring, if configured
	state   *stateService                // the session state service, if configured
	cluster clusterState                 // persistence replication, if configured (cluster.go)
}

// live is a running listener and its handler.
type live struct {
	limits *limit.Table // per-client rates and connections, if limited
	cfg    config.Listener
	ln     *listener.Listener
	http   *httpproxy.Handler
	tcp    *tcpproxy.Handler
	h2     *httpproxy.H2Switch // https: the HTTP/2 side
	done   chan struct{}
}

// New builds and starts everything cfg describes. On error nothing is left
// running.
func New(ctx context.Context, cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{
		opts:      opts,
		log:       opts.Logger,
		listeners: map[string]*live{},
		upstreams: map[*pool.Server]*httpproxy.Upstream{},
	}
	// The checkers log each state change once themselves.
	a.health = health.NewGroup(health.Config{Logger: a.log.With("room", "health")})
	a.health.Start(context.WithoutCancel(ctx))
	if err := a.apply(cfg); err != nil {
		a.health.Stop()
		a.closeAll()
		a.closeTables()
		return nil, err
	}
	if err := a.startState(ctx, cfg); err != nil {
		a.Shutdown(context.Background())
		return nil, err
	}
	if err := a.startAdmin(cfg); err != nil {
		a.Shutdown(context.Background())
		return nil, err
	}
	return a, nil
}

func (a *App) startAdmin(cfg *config.Config) error {
	token := ""
	if cfg.Admin.TokenFile != "" {
		b, err := os.ReadFile(cfg.Admin.TokenFile)
		if err != nil {
			return fmt.Errorf("reading admin token: %w", err)
		}
		token = string(trimSpace(b))
		if token == "" {
			return fmt.Errorf("admin token file %s is empty", cfg.Admin.TokenFile)
		}
	} else if admin.RequireToken(cfg.Admin.Listen) {
		return fmt.Errorf("admin.listen %s is not a loopback address: set admin.token_file", cfg.Admin.Listen)
	}
	srv, err := admin.New(admin.Options{Runtime: runtime{a}, Token: token, Logger: a.log.With("room", "admin"), Version: a.opts.Version, Hosts: cfg.Admin.Hosts})
	if err != nil {
		return err
	}
	if a.state != nil {
		if err := srv.Register(a.state.srv.Collector()); err != nil {
			return err
		}
	}
	a.adminAPI = srv
	a.mountTrace(srv)
	a.mountCluster(srv)
	a.mountLimits(srv)
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	a.adminLn = ln
	a.adminSrv = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	a.adminSrv.RegisterOnShutdown(srv.Close) // end the dashboard's event streams
	a.group.Add(1)
	go func() {
		defer a.group.Done()
		if err := a.adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin API stopped", "err", err)
		}
	}()
	a.log.Info("admin API listening", "address", ln.Addr().String())
	return nil
}

// AdminAddr is the admin API's bound address.
func (a *App) AdminAddr() net.Addr { return a.adminLn.Addr() }

// ListenerAddr is the bound address of the named listener, or nil.
func (a *App) ListenerAddr(name string) net.Addr {
	a.reload.Lock()
	defer a.reload.Unlock()
	if l := a.listeners[name]; l != nil {
		return l.ln.Addr()
	}
	return nil
}

// Pools returns the running pools.
func (a *App) Pools() []*pool.Pool { return a.g.Load().pools }

// Reload re-reads the config file and applies it; on any error the running
// config stays as it was.
func (a *App) Reload() error {
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		a.log.Error("reload refused", "err", err)
		return err
	}
	if err := a.apply(cfg); err != nil {
		a.log.Error("reload failed", "err", err)
		return err
	}
	a.log.Info("config reloaded", "file", a.opts.ConfigPath)
	return nil
}

// apply makes cfg the running config. New listeners are bound first, so a
// failure leaves the old config running untouched.
func (a *App) apply(cfg *config.Config) error {
	a.reload.Lock()
	defer a.reload.Unlock()
	if a.stopped {
		return errors.New("shutting down")
	}
	prev := a.g.Load()
	if err := a.loadKeyring(cfg); err != nil {
		return err
	}
	g, err := a.buildPools(cfg, prev)
	if err != nil {
		return err
	}
	if err := a.health.Update(healthSpecs(cfg, g)); err != nil {
		return fmt.Errorf("keepalives: %w", err)
	}
	a.wireHealth(cfg, g)

	// Prepare every listener's config before changing anything.
	type plan struct {
		lc   *config.Listener
		keep *live
		hc   *httpproxy.Config
		tc   *tcpproxy.Config
	}
	var plans []plan
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		p := plan{lc: lc}
		if l := a.listeners[lc.Name]; l != nil && sameListener(&l.cfg, lc) {
			p.keep = l
		}
		if lc.Protocol == "tcp" {
			p.tc = tcpConfig(lc, g, cfg.Pool(lc.Pool))
		} else {
			hc, err := httpConfig(lc, g)
			if err != nil {
				return err
			}
			if needsLimits(lc) {
				// One table per listener, kept across reloads so that a
				// reload does not hand every client a fresh allowance.
				if p.keep != nil && p.keep.limits != nil {
					hc.Limits = p.keep.limits
				} else {
					hc.Limits = limit.New(0, nil)
				}
				bindRates(hc, lc)
			}
			p.hc = hc
		}
		plans = append(plans, p)
	}
	// Bind the new listeners; undo on failure.
	var fresh []*live
	for i := range plans {
		p := &plans[i]
		if p.keep != nil {
			continue
		}
		l, err := a.bind(p.lc, p.hc, p.tc)
		if err != nil {
			for _, f := range fresh {
				f.ln.Close()
			}
			return fmt.Errorf("listener %q: %w", p.lc.Name, err)
		}
		fresh = append(fresh, l)
		p.keep = l
	}
	// Commit: swap configs, start new listeners, retire old ones.
	a.g.Store(g)
	next := map[string]*live{}
	for _, p := range plans {
		l := p.keep
		l.cfg = *p.lc
		if p.hc != nil {
			l.limits = p.hc.Limits
			if l.limits != nil {
				l.limits.SetScopes(limitScopes(p.lc))
			}
		}
		l.ln.SetProxy(p.lc.AcceptProxy, p.lc.TrustedPrefixes)
		if l.http != nil {
			l.http.Swap(p.hc)
			if p.lc.Protocol == "https" {
				l.ln.SetTLS(tlsConfig(p.lc))
			}
		} else {
			l.tcp.Swap(p.tc)
		}
		next[p.lc.Name] = l
	}
	for _, f := range fresh {
		a.serve(f)
	}
	for name, l := range a.listeners {
		if next[name] != l {
			a.retire(l, cfg.ShutdownTimeout)
		}
	}
	a.listeners = next
	a.pruneUpstreams(g)
	a.pruneTables(cfg)
	return a.applyCluster(cfg)
}

// wireHealth connects passive health: the forwarders report each exchange to
// the server's checker when the pool asks for it.
func (a *App) wireHealth(cfg *config.Config, g *graph) {
	for i := range cfg.Pools {
		pc := &cfg.Pools[i]
		if pc.Keepalive.Passive == nil || pc.Keepalive.Passive.Fall == 0 {
			continue
		}
		checkers := map[*pool.Server]*health.Checker{}
		for _, s := range g.byName[pc.Name].Servers() {
			if c := a.health.Checker(pc.Name, s.Name()); c != nil {
				checkers[s] = c
			}
		}
		g.targets[pc.Name].Observe = func(s *pool.Server, failed bool) {
			if c := checkers[s]; c != nil {
				c.ReportPassive(failed)
			}
		}
	}
}

func (a *App) bind(lc *config.Listener, hc *httpproxy.Config, tc *tcpproxy.Config) (*live, error) {
	l := &live{cfg: *lc, done: make(chan struct{})}
	var h listener.ConnHandler
	if tc != nil {
		l.tcp = tcpproxy.NewHandler(tc, a.log.With("listener", lc.Name))
		h = l.tcp
	} else {
		l.http = httpproxy.NewHandler(hc, a.log.With("listener", lc.Name), a.opts.Access)
		h = l.http
		if lc.Protocol == "https" {
			l.h2 = httpproxy.NewH2Switch(l.http, a.log)
			h = l.h2
		}
	}
	opts := listener.Options{Name: lc.Name, Address: lc.Listen, MaxConns: lc.Limits.MaxConns, Logger: a.log,
		AcceptProxy: lc.AcceptProxy, TrustedProxies: lc.TrustedPrefixes}
	if lc.Protocol == "https" {
		opts.TLS = tlsConfig(lc)
	}
	ln, err := listener.Listen(opts, h)
	if err != nil {
		return nil, err
	}
	l.ln = ln
	return l, nil
}

func (a *App) serve(l *live) {
	a.log.Info("listening", "listener", l.cfg.Name, "address", l.ln.Addr().String(), "protocol", l.cfg.Protocol)
	a.group.Add(1)
	go func() {
		defer a.group.Done()
		defer close(l.done)
		l.ln.Serve()
	}()
}

// retire stops a listener that the new config no longer has: no new
// connections, open ones drain in the background.
func (a *App) retire(l *live, timeout time.Duration) {
	l.ln.Close()
	a.group.Add(1)
	go func() {
		defer a.group.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		a.drain(ctx, l)
	}()
}

func (a *App) drain(ctx context.Context, l *live) {
	var wg sync.WaitGroup
	if l.h2 != nil {
		wg.Add(1)
		go func() { defer wg.Done(); l.h2.Shutdown(ctx) }()
	}
	if l.http != nil {
		l.http.Shutdown(ctx)
	}
	wg.Wait()
	if l.tcp != nil {
		l.tcp.Shutdown(ctx)
	}
	l.ln.Wait()
}

func (a *App) upstreamFor(s *pool.Server, o httpproxy.UpstreamOptions) *httpproxy.Upstream {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	u := a.upstreams[s]
	if u == nil {
		u = httpproxy.NewUpstream(s, o)
		a.upstreams[s] = u
	} else {
		u.SetOptions(o)
	}
	return u
}

// pruneUpstreams closes the connection pools of servers that are gone.
func (a *App) pruneUpstreams(g *graph) {
	keep := map[*pool.Server]bool{}
	for _, p := range g.pools {
		for _, s := range p.Servers() {
			keep[s] = true
		}
	}
	a.upMu.Lock()
	defer a.upMu.Unlock()
	for s, u := range a.upstreams {
		if !keep[s] {
			u.Close()
			delete(a.upstreams, s)
		}
	}
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends
// (then cuts them), and stops every goroutine the app started.
func (a *App) Shutdown(ctx context.Context) error {
	a.reload.Lock()
	a.stopped = true
	ls := a.listeners
	a.listeners = map[string]*live{}
	a.reload.Unlock()
	for _, l := range ls {
		l.ln.Close()
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() { defer wg.Done(); a.drain(ctx, l) }()
	}
	wg.Wait()
	if a.adminSrv != nil {
		a.adminSrv.Shutdown(ctx)
	}
	a.health.Stop()
	a.stopState(ctx)
	a.group.Wait()
	a.stopCluster()
	a.closeTables()
	a.upMu.Lock()
	for _, u := range a.upstreams {
		u.Close()
	}
	a.upMu.Unlock()
	return ctx.Err()
}

func (a *App) closeAll() {
	for _, l := range a.listeners {
		l.ln.Close()
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
