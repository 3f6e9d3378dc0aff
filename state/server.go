package state

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options, as in the state: config section.
const (
	DefaultTimeout       = 20 * time.Minute
	DefaultMaxLifetime   = 24 * time.Hour
	DefaultLockTimeout   = 90 * time.Second
	DefaultMaxSize       = 1 << 20
	DefaultRenewGrace    = 30 * time.Second
	DefaultSweepInterval = time.Minute
	DefaultPollInterval  = 50 * time.Millisecond
)

// Options configure a Server. Zero durations and sizes take the defaults.
type Options struct {
	// Store keeps the sessions (required). The Server owns it: Close closes it.
	Store Store
	// Sealer seals and opens tokens for /v1/protect and /v1/unprotect;
	// without one they answer 501.
	Sealer Sealer
	// Token is the bearer token every request must carry; empty turns
	// authentication off (only sensible on loopback).
	Token string
	// Timeout is the sliding expiry (default 20m).
	Timeout time.Duration
	// MaxLifetime is the absolute expiry from creation (default 24h).
	MaxLifetime time.Duration
	// LockTimeout is the age at which an exclusive lock is broken (default 90s).
	LockTimeout time.Duration
	// MaxSize is the largest session, in bytes (default 1MiB); larger
	// writes get 413.
	MaxSize int64
	// RenewGrace is how long a renewed id stays readable (default 30s).
	RenewGrace time.Duration
	// MaxWait caps a lock request's wait= (default LockTimeout plus a
	// second: enough for a waiter to outlast a stuck lock until it is broken).
	MaxWait time.Duration
	// SweepInterval is the time between expiry sweeps (default 1m).
	SweepInterval time.Duration
	// PollInterval is how often the head of a lock queue asks the store
	// again while the lock is held through another process (default 50ms).
	// Releases through this process wake it at once.
	PollInterval time.Duration
	// Logger receives sweep failures (default slog.Default()).
	Logger *slog.Logger
}

// Server is the session state service: the HTTP API of README.md over a
// Store, an expiry sweeper and metrics.
type Server struct {
	opts    Options
	store   Store
	queue   *lockQueue
	m       *metrics
	token   [sha256.Size]byte
	handler http.Handler

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewServer checks opts, fills in defaults and starts the expiry sweeper.
func NewServer(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("state: Options.Store is required")
	}
	def(&opts.Timeout, DefaultTimeout)
	def(&opts.MaxLifetime, DefaultMaxLifetime)
	def(&opts.LockTimeout, DefaultLockTimeout)
	def(&opts.MaxSize, DefaultMaxSize)
	def(&opts.RenewGrace, DefaultRenewGrace)
	def(&opts.SweepInterval, DefaultSweepInterval)
	def(&opts.PollInterval, DefaultPollInterval)
	// A waiter queued behind a stuck lock must be able to wait until the
	// lock is breakable and ask once more; capping at LockTimeout exactly
	// would race the break.
	def(&opts.MaxWait, opts.LockTimeout+time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for name, d := range map[string]time.Duration{"Timeout": opts.Timeout, "MaxLifetime": opts.MaxLifetime,
		"LockTimeout": opts.LockTimeout, "RenewGrace": opts.RenewGrace, "MaxWait": opts.MaxWait,
		"SweepInterval": opts.SweepInterval, "PollInterval": opts.PollInterval} {
		if d < 0 {
			return nil, fmt.Errorf("state: Options.%s must not be negative, got %v", name, d)
		}
	}
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("state: Options.MaxSize must not be negative, got %d", opts.MaxSize)
	}
	s := &Server{opts: opts, queue: newLockQueue()}
	s.m = newMetrics(s.queue)
	s.store = &timed{Store: opts.Store, h: s.m.storeSeconds}
	s.token = sha256.Sum256([]byte(opts.Token))
	s.handler = s.routes()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.sweepLoop(ctx) })
	return s, nil
}

func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Collector returns the service's Prometheus metrics for the caller to
// register.
func (s *Server) Collector() prometheus.Collector { return s.m }

// Serve answers the API on ln until ctx is done, then shuts down gracefully
// (waiting at most MaxWait for requests in flight).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }() // joined below
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.MaxWait+time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-done
	return err
}

// Close stops the sweeper and closes the store. Stop serving first.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		err = s.opts.Store.Close()
	})
	return err
}

// sweepLoop removes expired sessions and refreshes the gauges every
// SweepInterval, starting at once.
func (s *Server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		s.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.SweepInterval)
	defer cancel()
	n, err := s.store.Sweep(ctx)
	s.m.expiries.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		s.opts.Logger.Warn("state: expiry sweep failed", "err", err)
		return
	}
	if _, err := s.stats(ctx); err != nil && ctx.Err() == nil {
		s.opts.Logger.Warn("state: reading store stats failed", "err", err)
	}
}

// stats reads the store's counts and refreshes the gauges.
func (s *Server) stats(ctx context.Context) (Stats, error) {
	st, err := s.store.Stats(ctx)
	if err == nil {
		s.m.sessions.Store(st.Sessions)
		s.m.locked.Store(st.Locked)
	}
	return st, err
}

// authorized reports whether r carries the configured bearer token. Both
// sides are hashed first so the comparison is constant-time whatever the
// lengths.
func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !equalFold(h[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}
