// Package limit keeps per-client request rates and open connections at the
// edge: a bounded, sharded table keyed by client address, holding for each
// client a GCRA state (the theoretical arrival time of its next request) and
// its open connection count. Entries idle past their relevance are dropped
// first when the table is full.
//
// GCRA (the generic cell rate algorithm) is a token bucket in one number: a
// client may send Requests per Per, with Burst more at once; a request that
// would run ahead of that is refused with the time until it would not be.
package limit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// Rate is a request-rate limit. The zero value means no limit.
type Rate struct {
	Requests int           // allowed per Per
	Per      time.Duration // the period
	Burst    int           // requests allowed at once beyond the steady rate
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
}

type shard struct {
	mu  sync.Mutex
	m   map[key]*state
	max int
}

// key is a client and the rule its state is for: one client has a state
// per rate it is held to (the listener's, each route's).
type key struct {
	addr  netip.Addr
	scope int
}

type state struct {
	tat   int64 // unix nanoseconds: theoretical arrival time
	conns int32
	last  int64 // unix nanoseconds of the last use
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
	t := &Table{seed: maphash.MakeSeed(), now: now}
	for i := range t.shards {
		t.shards[i] = shard{m: map[key]*state{}, max: (maxEntries + shards - 1) / shards}
	}
	return t
}

func (t *Table) shard(a netip.Addr) *shard {
	b := a.As16()
	return &t.shards[maphash.Bytes(t.seed, b[:])%shards]
}

// get returns a's state, making room when the shard is full by dropping the
// entries with no open connection that were used least recently (a sample,
// not a full scan).
func (s *shard) get(a key, now int64) *state {
	st := s.m[a]
	if st != nil {
		return st
	}
	if len(s.m) >= s.max {
		var oldest key
		var oldestAt int64 = -1
		n := 0
		for k, v := range s.m {
			if v.conns == 0 && (oldestAt < 0 || v.last < oldestAt) {
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
	s.m[a] = st
	return st
}

// Allow counts one request of client a against rate r of the given scope
// (each scope, e.g. a listener or a route, keeps its own state). It reports
// whether the request may go on, and when not, how long until it would.
func (t *Table) Allow(a netip.Addr, scope int, r Rate) (ok bool, retryAfter time.Duration) {
	if !r.on() {
		return true, 0
	}
	now := t.now().UnixNano()
	iv := int64(r.interval())
	tolerance := iv * int64(r.Burst)
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key{a, scope}, now)
	st.last = now
	tat := max(st.tat, now)
	if tat-now > tolerance {
		return false, time.Duration(tat - now - tolerance)
	}
	st.tat = tat + iv
	return true, 0
}

// Open counts a new connection of client a against limit (0: unlimited) and
// reports whether it may stay open. Pair every true with Close.
func (t *Table) Open(a netip.Addr, limit int) bool {
	if limit <= 0 {
		return true
	}
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(key{addr: a}, t.now().UnixNano())
	if int(st.conns) >= limit {
		return false
	}
	st.conns++
	st.last = t.now().UnixNano()
	return true
}

// Close ends a connection counted by Open.
func (t *Table) Close(a netip.Addr) {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[key{addr: a}]; st != nil && st.conns > 0 {
		st.conns--
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
