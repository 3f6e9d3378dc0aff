// Package cluster replicates persistence tables between the nodes of a farm,
// so that a client pinned through one balancer keeps reaching the same server
// through another after a failover.
//
// Two modes. Peers (an active/standby or active/active pair): each node
// dials each peer and pushes its own table changes over an authenticated,
// encrypted TCP link, batched and acknowledged; a link that (re)connects
// first sends the whole table, then deltas. Redis (three nodes or more):
// every node writes its changes to a hash per pool in a shared Redis and
// publishes them, and applies what the others publish, so each local table
// stays warm; requests only ever touch the local table.
//
// Data flows one way: a table's change hook (Hook) queues the change on each
// link without blocking; the link's goroutine sends it; the other side
// Applies it to its own table, which does not emit it again. Conflicts are
// last-writer-wins by the time the key was last used (persist.Table.Apply).
//
// Peers mode also shares the listeners' limit tables (rate_limit): every
// coalescing window (limitWindow) a goroutine drains what each table
// consumed and the connection counts that changed, and queues them on each
// connected link that speaks protocol 2; a link's full sync carries the
// tables' non-idle states. Redis mode keeps limits per node.
//
// The package uses internal/persist's Change and Entry and internal/limit's
// Change and Source (plain data; neither imports anything internal) and
// declares the small interfaces it needs from a table (Table, Limits) and
// from the key ring (Ring); the composition root wires them.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/persist"
)

// Table is what the cluster needs from a persistence table.
type Table interface {
	// Apply applies a change from another node without calling the change
	// hook (last writer wins).
	Apply(persist.Change)
	// Range calls f for every live entry, with no lock held during f.
	Range(f func(persist.Entry) bool)
	// Timeout is the idle expiry of entries.
	Timeout() time.Duration
}

// Ring is what the cluster needs from the key ring: a key only the farm's
// nodes can derive, and a fingerprint to name a mismatch in the log.
type Ring interface {
	Derive(purpose string) ([]byte, error)
	Fingerprint() string
}

var _ Table = (*persist.Table)(nil)

// Limits is what the cluster needs from a listener's limit table.
type Limits interface {
	// Drain appends what was consumed and which connection counts changed
	// here since the last Drain.
	Drain(dst []limit.Change) []limit.Change
	// Range calls f for every non-idle state, with no lock held during f.
	Range(f func(limit.Change) bool)
	// Apply applies a record from another node without calling the hook;
	// false when it applied nothing (unknown scope, ended session).
	Apply(src limit.Source, c limit.Change) bool
	// Forget voids the connection counts src reported (its link ended).
	Forget(src limit.Source)
}

var _ Limits = (*limit.Table)(nil)

// Defaults of Options.
const (
	// DefaultQueueLimit is how many changes wait per link before the link
	// gives up on them and resyncs the whole table instead.
	DefaultQueueLimit = 1 << 16
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// reconnection attempts (doubling, with jitter). The maximum is short:
	// it is how long a restarted peer may wait for its table.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// Tuning that is not configuration.
const (
	batchChanges     = 1024             // changes per batch at most
	batchBytes       = 256 << 10        // bytes per batch at most
	window           = 16               // unacknowledged batches in flight per link
	handshakeTimeout = 5 * time.Second  // whole handshake, either side
	pingEvery        = 2 * time.Second  // an idle link sends an empty batch this often
	ackTimeout       = 10 * time.Second // an unacknowledged batch this old drops the link
	idleTimeout      = 3 * pingEvery    // an acceptor hearing nothing this long drops the link
	writeTimeout     = 10 * time.Second
	maxHandshakes    = 16 // unauthenticated connections at once
	// limitWindow is how long limit records coalesce before they are
	// queued: a client's requests within it travel as one record, and it
	// is most of the lag a limit replicates with.
	limitWindow = 20 * time.Millisecond
)

// Peer is another node of a pair (or small mesh).
type Peer struct {
	// Name is the peer's node name; it must answer the handshake as such.
	Name string
	// Address is its replication endpoint, host:port.
	Address string
}

// RedisOptions locate the shared store.
type RedisOptions struct {
	// URL is redis://[user:pass@]host:port/db or rediss://...
	URL string
	// Prefix starts every key and channel (default "fulcrum:cluster:").
	Prefix string
}

// Options configure a Cluster: Peers (with Listen and Ring) or Redis.
type Options struct {
	// Node is this node's name.
	Node string
	// Listen is the replication endpoint peers dial (peers mode).
	Listen string
	// Peers are the nodes this one pushes to and accepts pushes from.
	Peers []Peer
	// Ring authenticates peers (required with Peers).
	Ring Ring
	// Redis selects Redis mode.
	Redis *RedisOptions
	// Logger receives connection events (default: discard).
	Logger *slog.Logger
	// QueueLimit bounds each link's queue (default DefaultQueueLimit).
	QueueLimit int
	// MinBackoff and MaxBackoff bound reconnection waits (defaults
	// DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// Dial opens connections to peers (default a net.Dialer with a 2 s
	// timeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cluster replicates the tables given to SetTables. Create it with New,
// then Start; Stop cancels every goroutine and waits for them.
type Cluster struct {
	o      Options
	log    *slog.Logger
	tables atomic.Pointer[map[string]Table]
	peers  []*peerLink
	redis  *redisLink
	links  []*queue // every link's queue, for Hook
	in     map[string]*inbound

	limits     atomic.Pointer[map[string]Limits] // by listener
	limitWake  chan struct{}                     // capacity 1: a limit record is pending
	limitMu    sync.Mutex                        // orders drains against snapshots (limitSnapshot)
	sessions   atomic.Uint64                     // inbound sessions so far: limit.Source.Session
	perNode    sync.Once                         // Redis mode: "limits are per node" logged
	ignoredLim atomic.Uint64                     // limit records applied to nothing

	ln       net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  bool
	refused  atomic.Uint64 // handshakes refused (wrong ring, unknown node)
	unknown  atomic.Uint64 // changes received for a pool without a table here
	slots    chan struct{} // handshakes in progress
	stopOnce sync.Once
}

// New checks o and builds a stopped cluster.
func New(o Options) (*Cluster, error) {
	if o.Node == "" {
		return nil, errors.New("cluster: node name is empty")
	}
	if (len(o.Peers) > 0) == (o.Redis != nil) {
		return nil, errors.New("cluster: give either peers or a redis store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.QueueLimit <= 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 2 * time.Second}
		o.Dial = d.DialContext
	}
	c := &Cluster{o: o, log: o.Logger, in: map[string]*inbound{}, slots: make(chan struct{}, maxHandshakes), limitWake: make(chan struct{}, 1)}
	c.tables.Store(&map[string]Table{})
	c.limits.Store(&map[string]Limits{})
	if o.Redis != nil {
		r, err := newRedisLink(c, *o.Redis)
		if err != nil {
			return nil, err
		}
		c.redis = r
		c.links = append(c.links, r.q)
		return c, nil
	}
	if o.Ring == nil {
		return nil, errors.New("cluster: peers need a key ring")
	}
	if _, err := o.Ring.Derive(Purpose); err != nil {
		return nil, fmt.Errorf("cluster: deriving the replication key: %w", err)
	}
	if o.Listen == "" {
		return nil, errors.New("cluster: peers need a listen address")
	}
	for _, p := range o.Peers {
		if p.Name == "" || p.Name == o.Node || c.in[p.Name] != nil {
			return nil, fmt.Errorf("cluster: bad or repeated peer name %q", p.Name)
		}
		pl := &peerLink{c: c, name: p.Name, addr: p.Address, q: newQueue(o.QueueLimit, o.Now)}
		c.peers = append(c.peers, pl)
		c.links = append(c.links, pl.q)
		c.in[p.Name] = &inbound{}
	}
	return c, nil
}

// Start binds the replication endpoint (peers mode) and starts the links.
// It fails only when the address cannot be bound: an unreachable peer or
// Redis is retried in the background.
func (c *Cluster) Start() error {
	if c.started {
		return errors.New("cluster: already started")
	}
	if c.redis == nil {
		ln, err := net.Listen("tcp", c.o.Listen)
		if err != nil {
			return fmt.Errorf("cluster listen: %w", err)
		}
		c.ln = ln
	}
	c.started = true
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if c.ln != nil {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.accept(ctx) }()
		c.log.Info("cluster listening", "address", c.ln.Addr().String(), "node", c.o.Node)
	}
	for _, p := range c.peers {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); p.run(ctx) }()
	}
	if len(c.peers) > 0 {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.flushLimits(ctx) }()
	}
	if c.redis != nil {
		c.redis.start(ctx, &c.wg)
	}
	return nil
}

// Stop closes every connection and waits for every goroutine. Changes still
// queued are not sent: a peer gets them with its next full sync.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		if !c.started {
			return
		}
		c.cancel()
		if c.ln != nil {
			c.ln.Close()
		}
		c.wg.Wait()
		if c.redis != nil {
			c.redis.close()
		}
	})
}

// Addr is the bound replication endpoint, or nil (Redis mode, not started).
func (c *Cluster) Addr() net.Addr {
	if c.ln == nil {
		return nil
	}
	return c.ln.Addr()
}

// SetTables replaces the replicated tables, by pool name (a reload). Every
// table should also send its changes to Hook(pool). Changes received for a
// pool not in the map are dropped.
func (c *Cluster) SetTables(m map[string]Table) {
	cp := make(map[string]Table, len(m))
	for k, v := range m {
		cp[k] = v
	}
	c.tables.Store(&cp)
}

// Hook returns the change hook for pool's table (persist.Table.SetOnChange).
// It never blocks: each link's queue takes the change or, when full, marks
// the link for a full resync.
func (c *Cluster) Hook(pool string) func(persist.Change) {
	return func(ch persist.Change) {
		for _, q := range c.links {
			q.push(change{pool: pool, Change: ch})
		}
	}
}

// SetLimits replaces the shared limit tables, by listener name (a
// reload). Every table should also call LimitHook when a record is
// pending. Redis mode shares none: it logs so once.
func (c *Cluster) SetLimits(m map[string]Limits) {
	if c.redis != nil {
		if len(m) > 0 {
			c.perNode.Do(func() {
				c.log.Info("cluster: rate_limit is kept per node in redis mode (only a peers pair shares it)")
			})
		}
		return
	}
	cp := make(map[string]Limits, len(m))
	for k, v := range m {
		cp[k] = v
	}
	c.limits.Store(&cp)
}

// LimitHook returns the hook for every limit table's SetOnPending, or nil
// in Redis mode. It never blocks: it wakes the goroutine that drains the
// tables after limitWindow.
func (c *Cluster) LimitHook() func() {
	if c.redis != nil {
		return nil
	}
	return func() {
		select {
		case c.limitWake <- struct{}{}:
		default:
		}
	}
}

// flushLimits drains the limit tables limitWindow after the first record of
// a window is pending, and queues the records on every link that is up and
// speaks protocol 2. A link that is down gets none: its next session
// starts with a full sync, which carries the states they changed.
func (c *Cluster) flushLimits(ctx context.Context) {
	var buf []limit.Change
	var items []change
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.limitWake:
		}
		t.Reset(limitWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.limitMu.Lock()
		for name, lt := range *c.limits.Load() {
			buf = lt.Drain(buf[:0])
			for _, lc := range buf {
				items = append(items, change{pool: name, lim: lc})
			}
		}
		for _, p := range c.peers {
			if len(items) > 0 && p.st.connected.Load() && p.proto.Load() >= proto2 {
				p.q.pushAll(items)
			}
		}
		c.limitMu.Unlock()
		clear(items)
		items = items[:0]
	}
}

// limitSnapshot appends every limit table's snapshot to dst (a reset, then
// every non-idle state) and drops the limit records waiting in q: those
// were drained before this snapshot, which holds them. With limitMu held
// against flushLimits, every request is counted once: drained before the
// snapshot (in it), or after (left out of it, queued behind it).
func (c *Cluster) limitSnapshot(q *queue, dst []change) []change {
	c.limitMu.Lock()
	defer c.limitMu.Unlock()
	q.dropLimits()
	for name, lt := range *c.limits.Load() {
		dst = append(dst, change{pool: name, lim: limit.Change{Kind: limit.KindReset}})
		lt.Range(func(lc limit.Change) bool {
			dst = append(dst, change{pool: name, lim: lc})
			return true
		})
	}
	return dst
}

// forgetLimits voids what src reported to every limit table.
func (c *Cluster) forgetLimits(src limit.Source) {
	for _, lt := range *c.limits.Load() {
		lt.Forget(src)
	}
}

// apply applies a change from another node (src, for limit records) to the
// local table.
func (c *Cluster) apply(src limit.Source, ch change) bool {
	if ch.lim.Kind != 0 {
		lt := (*c.limits.Load())[ch.pool]
		if lt == nil || !lt.Apply(src, ch.lim) {
			c.ignoredLim.Add(1)
			return false
		}
		return true
	}
	t := (*c.tables.Load())[ch.pool]
	if t == nil {
		c.unknown.Add(1)
		return false
	}
	t.Apply(ch.Change)
	return true
}

// rangeTables calls f for every entry of every table, pool by pool.
func (c *Cluster) rangeTables(f func(change) bool) {
	for pool, t := range *c.tables.Load() {
		ok := true
		t.Range(func(e persist.Entry) bool {
			ok = f(change{pool: pool, Change: persist.Change{Op: persist.OpSet, Key: e.Key, Server: e.Server, Seen: e.Seen}})
			return ok
		})
		if !ok {
			return
		}
	}
}

// redactURL drops the password from a Redis URL for logs and status.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
