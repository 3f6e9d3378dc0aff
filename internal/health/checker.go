package health

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// What a Checker keeps.
const (
	KeepResults = 20        // last results, newest last
	KeepHistory = 100       // last transitions ...
	HistoryAge  = time.Hour // ... no older than this (the newest is always kept)
)

// Checker checks one server: it runs the probe on its schedule, applies
// rise/fall and reports state changes to its Target. Its methods are safe
// for concurrent use; none blocks on the network.
type Checker struct {
	pool, name, address string
	opts                Options
	prober              *prober
	fleet               *fleet // nil unless hash_fleet
	log                 *slog.Logger
	now                 func() time.Time
	onChange            func(Change)

	mu      sync.Mutex // guards the fields below; never held across I/O
	target  Target
	health  Health
	fails   int // consecutive failures
	passes  int // consecutive passes while down
	ref     string
	results ring // the last KeepResults
	history []Transition
	passive []time.Time // passive failures within Passive.Within

	// Scheduling, guarded by runMu (never held across I/O).
	runMu   sync.Mutex
	ctx     context.Context // nil until started
	cancel  context.CancelFunc
	sched   *scheduler
	stopped bool
	quit    atomic.Bool    // stopped, or the group's context ended: no more probes
	idle    idleConn       // the connection kept for the next check (http reuse)
	running sync.WaitGroup // the probe in flight, if any
	abort   aborter        // cuts the probe in flight short on stop
}

func newChecker(cfg *Config, pool string, t Target, o Options, f *fleet) *Checker {
	c := &Checker{
		pool: pool, name: t.Name(), address: t.Address(), opts: o, fleet: f,
		log: cfg.Logger, now: cfg.Now, onChange: cfg.OnChange,
		target: t,
	}
	c.prober = newProber(cfg.Dialer, c.address, o, true)
	return c
}

// Pool returns the name of the server's pool.
func (c *Checker) Pool() string { return c.pool }

// Name returns the server's name.
func (c *Checker) Name() string { return c.name }

// Address returns the address probed.
func (c *Checker) Address() string { return c.address }

// Options returns the keepalive options in use.
func (c *Checker) Options() Options { return c.opts }

// State returns the current verdict.
func (c *Checker) State() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// Last returns the newest result, if any check has completed.
func (c *Checker) Last() (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.results.len() == 0 {
		return Result{}, false
	}
	return c.results.at(c.results.len() - 1).result(), true
}

// Results returns up to KeepResults results, oldest first. Older passing
// results carry no Sent/Received/Segments (memory); failures keep theirs.
func (c *Checker) Results() []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := make([]Result, c.results.len())
	for i := range rs {
		rs[i] = c.results.at(i).result()
	}
	return rs
}

// History returns the state transitions kept, oldest first.
func (c *Checker) History() []Transition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.history)
}

// ReferenceHash returns the learned body hash ("" before the first good reply).
func (c *Checker) ReferenceHash() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ref
}

// Rehash forgets the reference hash; the next good reply is learned as the
// new one. Under hash_fleet the pool's majority still decides.
func (c *Checker) Rehash() {
	c.mu.Lock()
	c.ref = ""
	c.mu.Unlock()
	c.log.Info("keepalive reference hash reset", "pool", c.pool, "server", c.name)
}

// ReportPassive records the outcome of live traffic (a connect failure or
// a 5xx reply is failed). Passive.Fall failures within Passive.Within take
// the server down at once; active checks then need rise passes to bring it
// back. It is cheap and safe to call on the forwarding path.
func (c *Checker) ReportPassive(failed bool) {
	p := c.opts.Passive
	if !failed || p.Fall <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	keep := c.passive[:0]
	for _, t := range c.passive {
		if now.Sub(t) < p.Within {
			keep = append(keep, t)
		}
	}
	c.passive = append(keep, now)
	var tr Transition
	changed := false
	if len(c.passive) >= p.Fall && c.health != Down {
		reason := fmt.Sprintf("passive: %d failures on live traffic within %s", len(c.passive), p.Within)
		c.passive = c.passive[:0]
		c.passes, c.fails = 0, c.opts.Fall
		tr, changed = c.moveLocked(Down, reason), true
	}
	c.mu.Unlock()
	if changed {
		c.emit(tr)
	}
}

// start schedules the first probe, jittered within the interval. Between
// probes a checker has no goroutine: the scheduler runs each probe on a
// worker, and the checker schedules the next one when it has ended, so at
// most one is in flight.
func (c *Checker) start(parent context.Context, s *scheduler) {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.ctx != nil || c.stopped {
		return
	}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.sched = s
	s.schedule(c, rand.N(c.opts.Interval)+1)
}

// fire runs one probe and schedules the next. The probe takes the kept
// connection, if any, and gives back the one to keep: between probes the
// checker owns it, and stop closes it.
func (c *Checker) fire() {
	// quit, not ctx.Err(): the checker's own cache lines, not its
	// context's, which at ten thousand checkers a second is a cache miss.
	c.runMu.Lock()
	if c.stopped || c.quit.Load() {
		c.runMu.Unlock()
		return
	}
	idle := c.idle
	c.idle = idleConn{}
	c.running.Add(1)
	c.runMu.Unlock()
	defer c.running.Done()

	res, keep := c.prober.check(c.ctx, &c.abort, idle)
	// A failure may come from the context ending before halt has set quit.
	if c.quit.Load() || (!res.OK && c.ctx.Err() != nil) {
		keep.close()
		return // shutting down: the result says nothing about the server
	}
	next, ok := c.observe(res)
	if !ok {
		keep.close() // failed on the hash: any failure ends the connection
		keep = idleConn{}
	}
	c.runMu.Lock()
	if c.stopped {
		c.runMu.Unlock()
		keep.close()
		return
	}
	c.idle = keep
	c.sched.schedule(c, next)
	c.runMu.Unlock()
}

// stop takes the checker off the schedule (when next due, it is dropped),
// closes its kept connection and cuts its probe in flight short; wait then
// waits for that probe to return.
func (c *Checker) stop() {
	c.runMu.Lock()
	c.stopped = true
	c.quit.Store(true)
	if c.cancel != nil {
		c.cancel()
	}
	c.abort.abort()
	idle := c.idle
	c.idle = idleConn{}
	c.runMu.Unlock()
	idle.close()
}

// halt cuts the probe in flight short and closes the kept connection,
// when the group's context ends without Stop.
func (c *Checker) halt() {
	c.quit.Store(true)
	c.abort.abort()
	c.runMu.Lock()
	idle := c.idle
	c.idle = idleConn{}
	c.runMu.Unlock()
	idle.close()
}

func (c *Checker) wait() { c.running.Wait() }

// observe applies one result and returns the delay to the next check and
// the final verdict (the hash comparison may fail a probe's pass).
func (c *Checker) observe(res Result) (time.Duration, bool) {
	c.mu.Lock()
	c.judgeHash(&res)
	tr, changed := c.stepLocked(res)
	c.recordLocked(res)
	next := c.opts.Interval
	if c.health == Down {
		next = c.opts.DownInterval
	}
	c.mu.Unlock()
	if res.HashChanged {
		c.log.Info("keepalive hash changed with the pool; adopted", "pool", c.pool, "server", c.name, "reason", res.Reason)
	}
	if changed {
		c.emit(tr)
	}
	return next, res.OK
}

// judgeHash compares res.Hash with the reference, or with the pool's
// majority under hash_fleet, and learns it on the first good reply.
func (c *Checker) judgeHash(res *Result) {
	if !res.OK || res.Hash == "" {
		return
	}
	if c.fleet != nil {
		now := c.now()
		c.fleet.observe(c.name, res.Hash, now)
		maj, agree, total := c.fleet.majority(now, c.freshness())
		switch {
		case maj == "":
			// No majority yet (a deploy in progress): judge by our own reference.
		case maj != res.Hash:
			res.OK = false
			res.Reason = fmt.Sprintf("hash diverged from the pool: got %s, %d of %d servers serve %s",
				short(res.Hash), agree, total, short(maj))
			return
		case c.ref != "" && c.ref != maj:
			res.HashChanged = true
			res.Reason = fmt.Sprintf("hash_changed: %s -> %s (%d of %d servers agree)", short(c.ref), short(maj), agree, total)
			c.ref = maj
			return
		}
	}
	switch c.ref {
	case "":
		c.ref = res.Hash
		res.Reason += "; learned reference hash " + short(res.Hash)
	case res.Hash:
	default:
		res.OK = false
		res.Reason = fmt.Sprintf("hash changed: want %s, got %s", short(c.ref), short(res.Hash))
	}
}

// freshness is how old a peer's observation may be and still count: a
// peer checked at least once per round answers within this.
func (c *Checker) freshness() time.Duration {
	return 2*max(c.opts.Interval, c.opts.DownInterval) + c.opts.Timeout
}

// stepLocked is the rise/fall state machine.
func (c *Checker) stepLocked(res Result) (Transition, bool) {
	to := c.health
	var why string
	if res.OK {
		c.fails = 0
		switch c.health {
		case Dying:
			to, why = Up, res.Reason
		case Down:
			c.passes++
			if c.passes >= c.opts.Rise {
				to, why = Up, fmt.Sprintf("%d passes: %s", c.passes, res.Reason)
			}
		}
	} else {
		c.passes = 0
		c.fails++
		if c.health != Down {
			to = Dying
			if c.fails >= c.opts.Fall {
				to = Down
			}
			why = fmt.Sprintf("%s (%d of %d failures)", res.Reason, min(c.fails, c.opts.Fall), c.opts.Fall)
		}
	}
	if to == c.health {
		return Transition{}, false
	}
	if to == Up {
		c.passes = 0
	}
	return c.moveLocked(to, why), true
}

func (c *Checker) moveLocked(to Health, reason string) Transition {
	tr := Transition{At: c.now(), From: c.health, To: to, Reason: reason}
	c.health = to
	c.target.SetHealth(to)
	c.history = append(c.history, tr)
	drop := max(0, len(c.history)-KeepHistory)
	for drop < len(c.history)-1 && tr.At.Sub(c.history[drop].At) > HistoryAge {
		drop++
	}
	c.history = slices.Delete(c.history, 0, drop)
	return tr
}

func (c *Checker) recordLocked(res Result) {
	k := keepResult(res)
	if n := c.results.len(); n > 0 {
		prev := c.results.at(n - 1)
		if prev.ok {
			prev.ev = nil
		}
		// A steady server gives the same reason every time: keep one copy.
		if k.reason == prev.reason {
			k.reason = prev.reason
		}
	}
	if k.hash != "" && k.hash == c.ref {
		k.hash = c.ref
	}
	c.results.push(k)
}

// ring holds the last KeepResults results. Once full, a new result takes
// the oldest one's place: nothing moves (copying twenty results of cold
// memory for every check showed in profiles).
type ring struct {
	buf   []kept // grows to KeepResults, then is reused
	start int    // index of the oldest in buf once full
}

func (r *ring) len() int { return len(r.buf) }

// at returns the i-th oldest.
func (r *ring) at(i int) *kept { return &r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) push(k kept) {
	switch n := len(r.buf); {
	case n == KeepResults:
		r.buf[r.start] = k
		r.start = (r.start + 1) % n
	case n == cap(r.buf):
		// Sized once, exactly: append's doubling would keep room for 32.
		grown := make([]kept, n, KeepResults)
		copy(grown, r.buf)
		r.buf = append(grown, k)
	default:
		r.buf = append(r.buf, k)
	}
}

// clone returns a copy, oldest first.
func (r *ring) clone() ring {
	c := ring{buf: make([]kept, len(r.buf), cap(r.buf))}
	for i := range c.buf {
		c.buf[i] = *r.at(i)
	}
	return c
}

// kept is a Result as a Checker stores it: 104 bytes instead of 200, the
// evidence behind one pointer that is dropped once a newer result exists
// for a passing one. Ten thousand servers keep twenty each.
type kept struct {
	at          time.Time
	dur         time.Duration
	reason      string
	hash        string
	notes       []string
	status      int16  // 100..999
	connCheck   uint16 // Connection.Check, at most MaxReuseMax
	connMax     uint16 // Connection.Max
	ok          bool
	hashChanged bool
	ev          *evidence // nil when there is none, or when dropped
}

type evidence struct {
	sent, received []byte
	segments       []Segment
}

func keepResult(r Result) kept {
	k := kept{at: r.At, dur: r.Duration, reason: r.Reason, hash: r.Hash, notes: r.Notes,
		status: int16(r.Status), connCheck: uint16(r.Conn.Check), connMax: uint16(r.Conn.Max),
		ok: r.OK, hashChanged: r.HashChanged}
	if r.Sent != nil || r.Received != nil || r.Segments != nil {
		k.ev = &evidence{sent: r.Sent, received: r.Received, segments: r.Segments}
	}
	return k
}

func (k *kept) result() Result {
	r := Result{OK: k.ok, At: k.at, Duration: k.dur, Reason: k.reason, Status: int(k.status),
		Conn: Connection{Check: int(k.connCheck), Max: int(k.connMax)},
		Hash: k.hash, HashChanged: k.hashChanged, Notes: k.notes}
	if k.ev != nil {
		r.Sent, r.Received, r.Segments = k.ev.sent, k.ev.received, k.ev.segments
	}
	return r
}

func (c *Checker) emit(tr Transition) {
	level := slog.LevelInfo
	if tr.To != Up {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "server health changed",
		"pool", c.pool, "server", c.name, "address", c.address,
		"from", tr.From.String(), "to", tr.To.String(), "reason", tr.Reason)
	if c.onChange != nil {
		c.onChange(Change{Pool: c.pool, Server: c.name, Address: c.address, Transition: tr})
	}
}

// adopt takes over the state of an older checker of the same server
// (a reload that changed its options) and points it at target.
func (c *Checker) adopt(old *Checker) {
	old.mu.Lock()
	h, hist := old.health, slices.Clone(old.history)
	results := old.results.clone()
	old.mu.Unlock()
	c.mu.Lock()
	c.health, c.history, c.results = h, hist, results
	if h == Down {
		c.fails = c.opts.Fall
	}
	c.target.SetHealth(h)
	c.mu.Unlock()
}

// retarget points a kept checker at the target of the new config.
func (c *Checker) retarget(t Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.target != t {
		c.target = t
		t.SetHealth(c.health)
	}
}

// fleet is the hash observations of the servers of one pool (hash_fleet).
type fleet struct {
	mu   sync.Mutex
	seen map[string]observation
}

type observation struct {
	hash string
	at   time.Time
}

func newFleet() *fleet { return &fleet{seen: make(map[string]observation)} }

func (f *fleet) observe(server, hash string, at time.Time) {
	f.mu.Lock()
	f.seen[server] = observation{hash, at}
	f.mu.Unlock()
}

func (f *fleet) forget(server string) {
	f.mu.Lock()
	delete(f.seen, server)
	f.mu.Unlock()
}

// majority returns the hash served by more than half of the servers seen
// within fresh, with the counts; "" when fewer than two servers count or
// none has a majority.
func (f *fleet) majority(now time.Time, fresh time.Duration) (hash string, agree, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts := make(map[string]int, 2)
	for _, o := range f.seen {
		if now.Sub(o.at) <= fresh {
			counts[o.hash]++
			total++
		}
	}
	if total < 2 {
		return "", 0, total
	}
	for h, n := range counts {
		if 2*n > total {
			return h, n, total
		}
	}
	return "", 0, total
}
