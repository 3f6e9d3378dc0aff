package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Config is what a Group needs from the composition root.
type Config struct {
	// Logger receives one line per state change; nil discards.
	Logger *slog.Logger
	// Dialer opens probe connections; nil means a plain *net.Dialer.
	Dialer Dialer
	// Now is the clock for results and history; nil means time.Now.
	Now func() time.Time
	// OnChange, if set, is called once per state change (metrics, events),
	// outside any lock, from the goroutine that decided it.
	OnChange func(Change)
}

// Spec is one server to check.
type Spec struct {
	Pool    string
	Target  Target
	Options Options // after WithDefaults and Validate
}

// Group owns the checkers of the running config and the scheduler that
// runs their probes (one goroutine, plus a worker per probe in flight).
// Start runs them, Update swaps the set on reload, Stop cancels them and
// waits for every goroutine.
type Group struct {
	cfg Config

	mu       sync.Mutex
	ctx      context.Context // nil until Start
	cancel   context.CancelFunc
	sched    *scheduler // nil until Start
	checkers map[key]*Checker
	fleets   map[string]*fleet // by pool
	stopped  bool
}

type key struct{ pool, server string }

// NewGroup returns an empty group; give it servers with Update.
func NewGroup(cfg Config) *Group {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Group{cfg: cfg, checkers: make(map[key]*Checker), fleets: make(map[string]*fleet)}
}

// Start runs every checker until ctx is done or Stop is called.
func (g *Group) Start(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx != nil || g.stopped {
		return
	}
	g.ctx, g.cancel = context.WithCancel(ctx)
	g.sched = newScheduler()
	g.sched.start(g.ctx)
	// When ctx ends without Stop, probes in flight end at once too, and
	// kept connections are closed.
	context.AfterFunc(g.ctx, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range g.checkers {
			c.halt()
		}
	})
	for _, c := range g.checkers {
		g.launchLocked(c)
	}
}

// Stop cancels every checker and waits for every goroutine of the group:
// the scheduler, its workers and so every probe in flight.
func (g *Group) Stop() {
	g.mu.Lock()
	g.stopped = true
	if g.cancel != nil {
		g.cancel()
	}
	cs := make([]*Checker, 0, len(g.checkers))
	for _, c := range g.checkers {
		c.stop()
		cs = append(cs, c)
	}
	sched := g.sched
	g.mu.Unlock()
	for _, c := range cs {
		c.wait()
	}
	if sched != nil {
		sched.wait()
	}
}

// Update makes specs the set of checked servers. A server whose pool,
// name, address and options are unchanged keeps its checker with its state,
// results and learned hash (pointed at the new Target); a server whose
// options changed gets a new checker that inherits its health and history;
// removed servers' checkers are stopped and waited for. Invalid options or
// duplicate servers reject the whole update.
func (g *Group) Update(specs []Spec) error {
	var errs []error
	seen := make(map[key]bool, len(specs))
	for _, s := range specs {
		k := key{s.Pool, s.Target.Name()}
		if seen[k] {
			errs = append(errs, fmt.Errorf("pool %q: server %q listed twice", s.Pool, k.server))
		}
		seen[k] = true
		if err := s.Options.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("pool %q: %w", s.Pool, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return errors.New("health group stopped")
	}
	next := make(map[key]*Checker, len(specs))
	var retired []*Checker
	for _, s := range specs {
		k := key{s.Pool, s.Target.Name()}
		old := g.checkers[k]
		if old != nil && old.address == s.Target.Address() && old.opts.fingerprint() == s.Options.fingerprint() {
			old.retarget(s.Target)
			next[k] = old
			continue
		}
		c := newChecker(&g.cfg, s.Pool, s.Target, s.Options, g.fleetLocked(s.Pool, s.Options))
		if old != nil && old.address == c.address {
			c.adopt(old)
		} else {
			s.Target.SetHealth(Up)
		}
		if old != nil {
			retired = append(retired, old)
		}
		next[k] = c
		g.launchLocked(c)
	}
	for k, c := range g.checkers {
		if next[k] == nil {
			retired = append(retired, c)
		}
	}
	for _, c := range retired {
		if c.fleet != nil {
			c.fleet.forget(c.name)
		}
		c.stop()
	}
	g.checkers = next
	g.pruneFleetsLocked()
	g.mu.Unlock()
	for _, c := range retired {
		c.wait()
	}
	return nil
}

// Checker returns the checker of a server, or nil.
func (g *Group) Checker(pool, server string) *Checker {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.checkers[key{pool, server}]
}

// Checkers returns every checker, sorted by pool and server.
func (g *Group) Checkers() []*Checker {
	g.mu.Lock()
	cs := make([]*Checker, 0, len(g.checkers))
	for _, c := range g.checkers {
		cs = append(cs, c)
	}
	g.mu.Unlock()
	slices.SortFunc(cs, func(a, b *Checker) int {
		if a.pool != b.pool {
			if a.pool < b.pool {
				return -1
			}
			return 1
		}
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return cs
}

func (g *Group) launchLocked(c *Checker) {
	if g.ctx == nil || c.opts.Type == TypeNone {
		return
	}
	c.start(g.ctx, g.sched)
}

func (g *Group) fleetLocked(pool string, o Options) *fleet {
	if !o.HashFleet {
		return nil
	}
	f := g.fleets[pool]
	if f == nil {
		f = newFleet()
		g.fleets[pool] = f
	}
	return f
}

func (g *Group) pruneFleetsLocked() {
	used := make(map[string]bool)
	for _, c := range g.checkers {
		if c.fleet != nil {
			used[c.pool] = true
		}
	}
	for p := range g.fleets {
		if !used[p] {
			delete(g.fleets, p)
		}
	}
}
