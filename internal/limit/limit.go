// Package limit keeps per-client request rates and open connections at the
// edge: a bounded, sharded table keyed by client address, holding for each
// client a GCRA state (the theoretical arrival time of its next request) and
// its open connection count. Entries idle past their relevance are dropped
// first when the table is full.
//
// GCRA (the generic cell rate algorithm) is a token bucket in one number: a
// client may send Requests per Per, with Burst more at once; a request that
// would run ahead of that is refused with the time until it would not be.
//
// A table can be shared with the other nodes of a cluster (replicate.go):
// requests admitted here are counted per client and scope until Drain hands
// them out, and Apply takes other nodes' admissions and connection counts.
// The package imports nothing internal; the cluster reaches it through
// Change, Drain, Range, Apply and Forget.
package limit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Rate is a request-rate limit. The zero value means no limit.
type Rate struct {
	Requests int           // allowed per Per
	Per      time.Duration // the period
	Burst    int           // requests allowed at once beyond the steady rate

	scope uint32 // the named scope's id, when bound (Table.Bind)
	bound bool
}

func (r Rate) on() bool { return r.Requests > 0 && r.Per > 0 }

// interval is the steady spacing between requests.
func (r Rate) interval() time.Duration { return r.Per / time.Duration(r.Requests) }

const (
	shards     = 32
	defaultMax = 100000
)

// Table holds the clients' states. It is safe for concurrent use.
type Table struct {
	seed   maphash.Seed
	shards [shards]shard
	now    func() time.Time

	scopeMu sync.Mutex
	scopes  atomic.Pointer[registry] // scope names <-> ids (scope.go)
	nextID  uint32                   // under scopeMu

	onPending atomic.Pointer[func()] // replication hook; nil: nothing is tracked
	signaled  atomic.Bool            // onPending was called since the last Drain
	nodeMu    sync.Mutex
	nodes     atomic.Pointer[map[string]nodeState] // other nodes' link sessions (replicate.go)
	stamps    uint64                               // under nodeMu
}

type shard struct {
	mu    sync.Mutex
	m     map[key]*state
	max   int
	dirty []key // states with something to replicate, each once (replicate.go)
}

// key is a client and the rule its state is for: one client has a state
// per rate it is held to (the listener's, each route's). scope is an id
// (scope.go); the listener's is 0, whose state also holds the client's
// connections.
type key struct {
	addr  netip.Addr
	scope uint32
}

type state struct {
	tat   int64 // unix nanoseconds: theoretical arrival time
	last  int64 // unix nanoseconds of the last use
	conns int32 // open here
	// Replication (only while a hook is set): requests admitted here since
	// the last Drain, whether the state is in its shard's dirty list, and
	// whether conns changed since the last Drain.
	pend       uint32
	dirty      bool
	connsDirty bool
	// peers are other nodes' open connections of this client (scope 0).
	peers []peerConns
}

// New returns a table holding at most maxEntries clients (default 100000);
// now is the clock (nil: time.Now).
func New(maxEntries int, now func() time.Time) *Table {
	if maxEntries <= 0 {
		maxEntries = defaultMax
	}
	if now == nil {
		now = time.Now
	}
	t := &Table{seed: maphash.MakeSeed(), now: now, nextID: 1}
	for i := range t.shards {
		t.shards[i] = shard{m: map[key]*state{}, max: (maxEntries + shards - 1) / shards}
	}
	return t
}

func (t *Table) shard(a netip.Addr) *shard {
	b := a.As16()
	return &t.shards[maphash.Bytes(t.seed, b[:])%shards]
}

// get returns k's state, making room when the shard is full by dropping the
// entries with no open connection (here or at a peer) that were used least
// recently (a sample, not a full scan). Called with s.mu held.
func (t *Table) get(s *shard, k key) *state {
	st := s.m[k]
	if st != nil {
		return st
	}
	if len(s.m) >= s.max {
		nodes := t.nodes.Load()
		var oldest key
		var oldestAt int64 = -1
		n := 0
		for k, v := range s.m {
			if v.conns == 0 && peerSum(v, nodes) == 0 && (oldestAt < 0 || v.last < oldestAt) {
				oldest, oldestAt = k, v.last
			}
			if n++; n >= 16 {
				break
			}
		}
		if oldestAt >= 0 {
			delete(s.m, oldest)
		}
	}
	st = &state{}
	s.m[k] = st
	return st
}

// Allow counts one request of client a against rate r of the given scope
// index (each scope, e.g. a listener or a route, keeps its own state; a
// rate bound to a named scope by Bind keeps it under that name instead of
// the index). It reports whether the request may go on, and when not, how
// long until it would.
func (t *Table) Allow(a netip.Addr, scope int, r Rate) (ok bool, retryAfter time.Duration) {
	if !r.on() {
		return true, 0
	}
	now := t.now().UnixNano()
	iv := int64(r.interval())
	tolerance := iv * int64(r.Burst)
	k := key{normal(a), scopeID(r, scope)}
	s := t.shard(k.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := t.get(s, k)
	st.last = now
	tat := max(st.tat, now)
	if tat-now > tolerance {
		return false, time.Duration(tat - now - tolerance)
	}
	st.tat = tat + iv
	if f := t.onPending.Load(); f != nil {
		if st.pend < 1<<32-1 {
			st.pend++
		}
		t.mark(s, k, st, *f)
	}
	return true, 0
}

// Open counts a new connection of client a against limit (0: unlimited) and
// reports whether it may stay open. The connections other nodes report
// (Apply) count too. Pair every true with Close.
func (t *Table) Open(a netip.Addr, limit int) bool {
	if limit <= 0 {
		return true
	}
	k := key{addr: normal(a)}
	s := t.shard(k.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := t.get(s, k)
	if int(st.conns)+peerSum(st, t.nodes.Load()) >= limit {
		return false
	}
	st.conns++
	st.last = t.now().UnixNano()
	t.connsChanged(s, k, st)
	return true
}

// Close ends a connection counted by Open.
func (t *Table) Close(a netip.Addr) {
	k := key{addr: normal(a)}
	s := t.shard(k.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[k]; st != nil && st.conns > 0 {
		st.conns--
		t.connsChanged(s, k, st)
	}
}

// Len is the number of clients held.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// normal drops an address's zone: the key is the same on every node (a
// zone names an interface of one machine).
func normal(a netip.Addr) netip.Addr {
	if a.Zone() != "" {
		return a.WithZone("")
	}
	return a
}
