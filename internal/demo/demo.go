// Package demo holds the sample application servers and the config that
// `fulcrum demo` runs: a small web farm on loopback to try fulcrum on.
//
// Each sample server keeps its sessions in the state service through the
// public session middleware, exactly as a real Go application would: the
// page shows which server answered and a per-session visit counter that
// keeps counting whichever server the balancer picks.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrumlb/fulcrum/session"
)

// Fault is what a sample server gets wrong on purpose: the hook for
// `fulcrum demo --chaos` (issue 7), which flips servers between faults so
// the keepalives have something to react to.
type Fault int32

const (
	// FaultNone: the server works.
	FaultNone Fault = iota
	// FaultDown: /healthz and every page answer 503.
	FaultDown
	// FaultErrorBody: /healthz answers 200 with an error page (a keepalive
	// with body_match catches it; a status check does not).
	FaultErrorBody
	// FaultChangedPage: /healthz answers 200 with a different body (a
	// keepalive comparing a learned hash catches it).
	FaultChangedPage
)

// CookieName is the sample servers' session cookie.
const CookieName = "demo_session"

// healthyBody is what /healthz answers; the demo's keepalive matches it.
const healthyBody = "Successfully Running"

// AppOptions configure the sample servers.
type AppOptions struct {
	// StateURL is the state service (e.g. http://127.0.0.1:9100) and Token
	// its bearer token (empty: none).
	StateURL string
	Token    string
	// Sealer seals the session cookie: the farm's key ring, the same on
	// every server.
	Sealer session.Sealer
	// Logger receives the session middleware's warnings (default: discarded).
	Logger *slog.Logger
}

// App is one sample application server.
type App struct {
	Name  string
	srv   *http.Server
	ln    net.Listener
	hits  atomic.Int64
	fault atomic.Int32
	wg    sync.WaitGroup
}

// Addr is the app's host:port.
func (a *App) Addr() string { return a.ln.Addr().String() }

// SetFault makes the server misbehave (FaultNone: behave again).
func (a *App) SetFault(f Fault) { a.fault.Store(int32(f)) }

// StartApps starts n sample servers on loopback, named app-1..app-n.
func StartApps(n int, o AppOptions) ([]*App, error) {
	if o.StateURL == "" || o.Sealer == nil {
		return nil, errors.New("demo: the sample servers need the state service's URL and the key ring")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var apps []*App
	for i := 1; i <= n; i++ {
		a, err := startApp(fmt.Sprintf("app-%d", i), o)
		if err != nil {
			StopApps(apps)
			return nil, err
		}
		apps = append(apps, a)
	}
	return apps, nil
}

func startApp(name string, o AppOptions) (*App, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &App{Name: name, ln: ln}
	// Each server has its own client, as separate processes would.
	mw := session.Middleware(session.Options{
		Client:     session.NewClient(o.StateURL, o.Token, nil),
		Sealer:     o.Sealer,
		CookieName: CookieName,
		LockWait:   5 * time.Second,
		Logger:     o.Logger.With("server", name),
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /favicon.ico", http.NotFound) // a browser's extra request must not count as a visit
	peek := mw(session.ReadOnly(http.HandlerFunc(a.peek)))
	mux.Handle("GET /peek", peek)
	mux.Handle("GET /roam/peek", peek)
	mux.Handle("/", mw(http.HandlerFunc(a.page)))
	a.srv = &http.Server{Handler: a.faulty(mux), ReadHeaderTimeout: 5 * time.Second}
	a.wg.Go(func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("sample server stopped", "server", name, "err", err)
		}
	})
	return a, nil
}

// faulty answers 503 for everything while the server is FaultDown.
func (a *App) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Fault(a.fault.Load()) == FaultDown {
			http.Error(w, a.Name+" is down (demo fault)", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	switch Fault(a.fault.Load()) {
	case FaultErrorBody:
		fmt.Fprintln(w, "Internal error: database unavailable")
	case FaultChangedPage:
		fmt.Fprintln(w, healthyBody, "(maintenance page, build", time.Now().Unix(), ")")
	default:
		fmt.Fprintln(w, healthyBody)
	}
}

// Kill stops the server at once: its listener and every connection close
// mid-flight, as when the process dies.
func (a *App) Kill() {
	a.srv.Close()
	a.wg.Wait()
}

// StopApps stops the apps gracefully and waits for them.
func StopApps(apps []*App) {
	for _, a := range apps {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.srv.Shutdown(ctx)
		cancel()
		a.wg.Wait()
	}
}
