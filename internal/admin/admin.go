// Package admin serves fulcrum's operator interface: a JSON API over the
// pools and their servers, configuration reload, and Prometheus metrics.
//
// The package owns no listener and no goroutines: the composition root builds
// a Server with New, mounts Handler on the admin listener, and implements
// Runtime, the small view of the running balancer this package needs. Metrics
// are read from the pools at scrape time, so the forwarding path pays nothing
// for them.
package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// Runtime is what the admin API needs from the running balancer. The
// composition root implements it; every method must be safe for concurrent
// use.
type Runtime interface {
	// Pools returns the current pools. A reload swaps them.
	Pools() []*pool.Pool
	// Reload re-reads the configuration. A returned error's text is shown to
	// the operator, one mistake per line. An *APIError is rendered as is.
	Reload() error
	// LastCheck returns the latest keepalive verdict for a server, and false
	// when there is none yet.
	LastCheck(pool, server string) (CheckSummary, bool)
	// Checks returns a JSON-marshallable record of a server's last checks and
	// state history, and false when the server is unknown.
	Checks(pool, server string) (any, bool)
	// Rehash makes the server's keepalive re-learn its reference hash. An
	// *APIError is rendered as is; any other error becomes a 409.
	Rehash(pool, server string) error
	// Persistence returns a pool's persistence table, and false when the
	// pool keeps none (no persistence, or a cookie mode with no table).
	Persistence(pool string) (PersistTable, bool)
}

// PersistTable is what the API reads and changes of a persistence table.
type PersistTable interface {
	Len() int
	Counts() map[string]int
	Peek(key string) (persist.Entry, bool)
	Delete(key string) bool
	Timeout() time.Duration
}

// CheckSummary is the latest keepalive verdict of a server.
type CheckSummary struct {
	OK         bool      `json:"ok"`
	At         time.Time `json:"at"`
	DurationMS float64   `json:"duration_ms"`
	Reason     string    `json:"reason"`
}

// Options configure a Server.
type Options struct {
	// Runtime is the running balancer. Required.
	Runtime Runtime
	// Token, when not empty, is the bearer token every route except /healthz
	// requires. Surrounding white space (a token file's trailing newline) is
	// ignored; a token of only white space is refused rather than read as
	// "no authentication".
	Token string
	// Logger receives one line per change an operator makes and per refused
	// request. Default: discard.
	Logger *slog.Logger
	// Version is reported by GET /api/v1/version and fulcrum_build_info.
	Version string
	// Hosts are the names, besides IP literals, localhost and the
	// machine's host name, that requests may carry in Host (the names the
	// operator reaches the admin by). Any other name is refused with 421,
	// against DNS rebinding. Default: none.
	Hosts []string
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// ErrNoRuntime is returned by New when Options.Runtime is nil.
var ErrNoRuntime = errors.New("admin: options.Runtime is required")

// Server is the admin API. It is an http.Handler; it is safe for concurrent use.
type Server struct {
	rt      Runtime
	log     *slog.Logger
	version string
	auth    *bearer // nil when no token is configured
	csrf    *http.CrossOriginProtection
	reg     *prometheus.Registry
	mux     *http.ServeMux

	sessions *sessions           // browser logins; nil when no token is configured
	hosts    map[string]struct{} // allowed Host names, lower case
	track    *tracker            // rates, operator actions and bodies for the dashboard

	done      chan struct{} // closed by Close: event streams end
	closeOnce sync.Once
}

var _ http.Handler = (*Server)(nil)

// New returns an admin API server for opts.
func New(opts Options) (*Server, error) {
	if opts.Runtime == nil {
		return nil, ErrNoRuntime
	}
	s := &Server{
		rt:      opts.Runtime,
		log:     opts.Logger,
		version: opts.Version,
		csrf:    http.NewCrossOriginProtection(),
		reg:     prometheus.NewRegistry(),
		mux:     http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s.track = newTracker(now)
	s.done = make(chan struct{})
	s.hosts = map[string]struct{}{}
	if name, err := os.Hostname(); err == nil && name != "" {
		s.hosts[strings.ToLower(name)] = struct{}{}
	}
	for _, h := range opts.Hosts {
		s.hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = struct{}{}
	}
	if opts.Token != "" {
		tok := strings.TrimSpace(opts.Token)
		if tok == "" {
			return nil, errors.New("admin: token is only white space")
		}
		s.auth = newBearer(tok)
		s.sessions = newSessions(s.auth.sum, now)
	}
	if err := registerMetrics(s.reg, s.rt, s.version); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	s.routes()
	return s, nil
}

// Handler returns the handler to mount on the admin listener.
func (s *Server) Handler() http.Handler { return s }

// Register adds a collector (another room's metrics) to the private registry
// served on /metrics.
func (s *Server) Register(c prometheus.Collector) error {
	if err := s.reg.Register(c); err != nil {
		return fmt.Errorf("registering collector: %w", err)
	}
	return nil
}

// Mount serves h for an http.ServeMux pattern (e.g. "GET /api/v1/cluster")
// behind the API's access rules: how other rooms (cluster, state) add their
// own endpoints. Call it before serving.
func (s *Server) Mount(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

func (s *Server) routes() {
	const srv = "/api/v1/pools/{pool}/servers/{server}"
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /api/v1/version", s.versionInfo)
	s.mux.HandleFunc("GET /api/v1/pools", s.listPools)
	s.mux.HandleFunc("GET /api/v1/pools/{pool}", s.getPool)
	s.mux.HandleFunc("GET "+srv, s.getServer)
	s.mux.HandleFunc("POST "+srv+"/drain", s.setAdmin(pool.AdminDraining, "drained"))
	s.mux.HandleFunc("POST "+srv+"/disable", s.setAdmin(pool.AdminDisabled, "disabled"))
	s.mux.HandleFunc("POST "+srv+"/enable", s.setAdmin(pool.AdminNone, "enabled"))
	s.mux.HandleFunc("POST "+srv+"/weight", s.setWeight)
	s.mux.HandleFunc("POST "+srv+"/rehash", s.rehash)
	s.mux.HandleFunc("GET "+srv+"/checks", s.checks)
	s.mux.HandleFunc("POST /api/v1/reload", s.reload)
	s.mux.HandleFunc("GET /api/v1/pools/{pool}/persistence", s.persistence)
	s.mux.HandleFunc("DELETE /api/v1/pools/{pool}/persistence", s.persistenceDelete)
	s.mux.Handle("GET /metrics", metricsHandler(s.reg, s.log))
	// Profiles of the running process, behind the same access rules as the
	// rest of the API: how bench/README.md's profiles were taken.
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.dashboardRoutes()
}

// maxBody bounds every request body; the largest legitimate one is
// {"weight": 1000}.
const maxBody = 4 << 10

// ServeHTTP checks the Host, refuses cross-origin writes, authenticates the
// request (bearer token or login cookie), and routes it. Unknown routes and
// wrong methods are answered in JSON too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !s.hostAllowed(r.Host) {
		s.log.Warn("admin: unknown Host refused", "remote", r.RemoteAddr, "host", r.Host, "path", r.URL.Path)
		writeError(w, &APIError{Status: http.StatusMisdirectedRequest, Msg: "unknown host",
			Details: []string{"the admin answers to IP addresses, localhost and its configured names"}})
		return
	}
	if err := s.csrf.Check(r); err != nil {
		s.log.Warn("admin: cross-origin write refused", "remote", r.RemoteAddr, "method", r.Method,
			"path", r.URL.Path, "origin", r.Header.Get("Origin"))
		writeError(w, &APIError{Status: http.StatusForbidden, Msg: "cross-origin request refused", Details: []string{err.Error()}})
		return
	}
	if !public(r) && !s.allowed(r) {
		if browserNavigation(r) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		s.log.Warn("admin: unauthorized request", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="fulcrum admin"`)
		writeError(w, &APIError{Status: http.StatusUnauthorized, Msg: "missing or invalid bearer token"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.noRoute(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// noRoute answers a request no pattern matches: 405 with Allow when the path
// exists for another method, 404 otherwise.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, &APIError{Status: http.StatusNotFound, Msg: "no such route"})
		return
	}
	if allow[0] == http.MethodGet {
		allow = append(allow, http.MethodHead)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, &APIError{Status: http.StatusMethodNotAllowed, Msg: "method " + r.Method + " not allowed"})
}

// RequireToken reports whether an admin listen address is reachable from
// other hosts, in which case the root must refuse to start without a token.
// 127.0.0.0/8, ::1 and "localhost" are loopback; an empty host (":9090"),
// a wildcard ("0.0.0.0", "[::]") or any other name is not.
func RequireToken(listen string) bool {
	host := listen
	if h, _, err := net.SplitHostPort(listen); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return true
	}
	return !addr.Unmap().IsLoopback()
}
