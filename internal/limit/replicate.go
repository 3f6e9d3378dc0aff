package limit

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Sharing a table between the nodes of a cluster, so that a client held to
// N requests or C connections gets N or C in total, not per node.
//
// Rates: each node sends what it consumed, not its state. Requests admitted
// here are counted per client and scope (Allow, under the shard lock) until
// Drain hands them out as one KindRate change per state ("n requests"); the
// hook only says that something is pending, once per Drain. A node applying
// it charges the client n intervals of its own rate for that scope: tat =
// max(tat, now) + n*interval, so both nodes end at the same state whatever
// the interleaving, even when both admitted requests concurrently (merging
// absolute states by max would count only one node's). A full snapshot
// (Range) carries KindAhead: how far the state is ahead of now, merged by
// max, so it is idempotent and needs no clock agreement. No state is ever
// pushed further than one period beyond its burst.
//
// Connections: each node sends its own count of a client (KindConns, an
// absolute value). A count is kept per node and per link session (Source):
// Forget at the end of the session, or a KindReset starting a full
// snapshot, voids every count that node reported before, so a dead peer's
// connections never hold a client off.

// Kind is what a Change carries.
type Kind uint8

const (
	// KindRate: N requests of client Addr were admitted under scope Scope.
	KindRate Kind = iota + 1
	// KindAhead: client Addr's state under Scope is Ahead ahead of now (a
	// snapshot entry).
	KindAhead
	// KindConns: client Addr has N connections open at the sending node.
	KindConns
	// KindReset: a full snapshot of the sending node begins; the counts it
	// sent before are void.
	KindReset
)

// Change is one record of a table's replication.
type Change struct {
	Kind  Kind
	Addr  netip.Addr
	Scope string        // KindRate, KindAhead
	N     uint32        // KindRate: requests; KindConns: connections
	Ahead time.Duration // KindAhead
}

// Source is where applied changes come from: a node, and the session of
// its link (a number that grows with every new session).
type Source struct {
	Node    string
	Session uint64
}

// nodeState is what a table knows of one node's link: the latest session,
// whether it is still open, and the stamp its counts must carry to count.
type nodeState struct {
	session uint64
	stamp   uint64
	live    bool
}

// peerConns is one node's report of a client's open connections.
type peerConns struct {
	node  string
	stamp uint64
	n     int32
}

// peerSum is the connections other nodes hold open for st's client.
func peerSum(st *state, nodes *map[string]nodeState) int {
	n := 0
	for _, p := range st.peers {
		if p.valid(nodes) {
			n += int(p.n)
		}
	}
	return n
}

// valid reports whether p is from its node's current link session and
// snapshot.
func (p *peerConns) valid(nodes *map[string]nodeState) bool {
	if nodes == nil {
		return false
	}
	ns, ok := (*nodes)[p.node]
	return ok && ns.live && ns.stamp == p.stamp
}

// SetOnPending sets the replication hook (nil: none, the default): f is
// called when a change becomes pending, at most once between two Drains,
// under a shard lock on the request path: it must not block or call the
// table. Without a hook nothing is tracked. Setting it drops what was
// pending.
func (t *Table) SetOnPending(f func()) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, k := range s.dirty {
			if st := s.m[k]; st != nil {
				st.pend, st.dirty, st.connsDirty = 0, false, false
			}
		}
		s.dirty = s.dirty[:0]
		s.mu.Unlock()
	}
	if f == nil {
		t.onPending.Store(nil)
	} else {
		t.onPending.Store(&f)
	}
	t.signaled.Store(false)
}

// mark lists st for the next Drain and tells the hook. Called with s.mu
// held. The list holds each state once, so it is bounded by the shard.
func (t *Table) mark(s *shard, k key, st *state, hook func()) {
	if st.dirty || len(s.dirty) >= s.max {
		return
	}
	st.dirty = true
	s.dirty = append(s.dirty, k)
	if !t.signaled.Load() && !t.signaled.Swap(true) {
		hook()
	}
}

// connsChanged notes a change of st's local connection count.
func (t *Table) connsChanged(s *shard, k key, st *state) {
	if f := t.onPending.Load(); f != nil {
		st.connsDirty = true
		t.mark(s, k, st, *f)
	}
}

// Drain appends to dst what was consumed and what connection counts changed
// here since the last Drain, one change per state, and clears it.
func (t *Table) Drain(dst []Change) []Change {
	t.signaled.Store(false)
	reg := t.scopes.Load()
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, k := range s.dirty {
			st := s.m[k]
			if st == nil || !st.dirty {
				continue // evicted since, or listed twice
			}
			st.dirty = false
			if st.pend > 0 {
				if sc, ok := reg.scope(k.scope); ok {
					dst = append(dst, Change{Kind: KindRate, Addr: k.addr, Scope: sc.Name, N: st.pend})
				}
				st.pend = 0
			}
			if st.connsDirty {
				st.connsDirty = false
				dst = append(dst, Change{Kind: KindConns, Addr: k.addr, N: uint32(st.conns)})
			}
		}
		s.dirty = s.dirty[:0]
		s.mu.Unlock()
	}
	return dst
}

// Range calls f for every state worth a snapshot, with no lock held during
// f: KindAhead for a named scope still ahead of now, KindConns for a client
// with connections open here. It stops when f returns false. A state's
// requests not yet drained are left out of its KindAhead (the next Drain
// carries them), so a snapshot followed by the next Drain counts each
// request once.
func (t *Table) Range(f func(Change) bool) {
	reg := t.scopes.Load()
	var buf []Change
	for i := range t.shards {
		s := &t.shards[i]
		now := t.now().UnixNano()
		buf = buf[:0]
		s.mu.Lock()
		for k, st := range s.m {
			if sc, ok := reg.scope(k.scope); ok && sc.Rate.on() {
				if ahead := st.tat - now - int64(st.pend)*int64(sc.Rate.interval()); ahead > 0 {
					buf = append(buf, Change{Kind: KindAhead, Addr: k.addr, Scope: sc.Name, Ahead: time.Duration(ahead)})
				}
			}
			if k.scope == 0 && st.conns > 0 {
				buf = append(buf, Change{Kind: KindConns, Addr: k.addr, N: uint32(st.conns)})
			}
		}
		s.mu.Unlock()
		for _, c := range buf {
			if !f(c) {
				return
			}
		}
	}
}

// Apply applies a change from another node. It never calls the hook (so
// nothing echoes). It reports false when it applied nothing: a scope this
// table does not name or does not limit (the nodes' configurations
// differ), or counts from a session that has been superseded or ended.
func (t *Table) Apply(src Source, c Change) bool {
	switch c.Kind {
	case KindRate, KindAhead:
		return t.applyRate(c)
	case KindConns:
		stamp, ok := t.session(src, false)
		if !ok {
			return false
		}
		t.applyConns(src.Node, stamp, c)
		return true
	case KindReset:
		_, ok := t.session(src, true)
		return ok
	}
	return false
}

func (t *Table) applyRate(c Change) bool {
	id, sc, ok := t.scopes.Load().lookup(c.Scope)
	if !ok || !sc.Rate.on() {
		return false
	}
	iv := int64(sc.Rate.interval())
	if iv <= 0 {
		return false
	}
	now := t.now().UnixNano()
	ceiling := now + iv*int64(sc.Rate.Burst) + int64(sc.Rate.Per)
	k := key{normal(c.Addr), id}
	s := t.shard(k.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := t.get(s, k)
	st.last = now
	var tat int64
	if c.Kind == KindRate {
		n := min(int64(c.N), (ceiling-now)/iv+1)
		tat = max(st.tat, now) + n*iv
	} else {
		tat = now + min(int64(c.Ahead), ceiling-now)
	}
	st.tat = max(st.tat, min(tat, ceiling))
	return true
}

func (t *Table) applyConns(node string, stamp uint64, c Change) {
	k := key{addr: normal(c.Addr)}
	s := t.shard(k.addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := t.get(s, k)
	st.last = t.now().UnixNano()
	n := int32(min(c.N, 1<<31-1))
	for i := range st.peers {
		if st.peers[i].node == node {
			if n == 0 {
				st.peers = append(st.peers[:i], st.peers[i+1:]...)
			} else {
				st.peers[i] = peerConns{node: node, stamp: stamp, n: n}
			}
			return
		}
	}
	if n > 0 {
		st.peers = append(st.peers, peerConns{node: node, stamp: stamp, n: n})
	}
}

// session returns the stamp counts from src carry: src's node's current
// one, or a new one when src is a newer session than the table knew, or
// fresh is set (a snapshot begins). It reports false for an older session,
// or one that ended.
func (t *Table) session(src Source, fresh bool) (uint64, bool) {
	if !fresh {
		if m := t.nodes.Load(); m != nil {
			if ns, ok := (*m)[src.Node]; ok && ns.session == src.Session && ns.live {
				return ns.stamp, true
			}
		}
	}
	t.nodeMu.Lock()
	defer t.nodeMu.Unlock()
	var cur map[string]nodeState
	if m := t.nodes.Load(); m != nil {
		cur = *m
	}
	ns, known := cur[src.Node]
	switch {
	case known && (ns.session > src.Session || ns.session == src.Session && !ns.live):
		return 0, false
	case known && ns.session == src.Session && !fresh:
		return ns.stamp, true
	}
	t.stamps++
	next := nodeState{session: src.Session, stamp: t.stamps, live: true}
	t.storeNode(cur, src.Node, next)
	return next.stamp, true
}

// Forget voids every count src reported, unless a newer session of its
// node has begun: the link that carried them is gone.
func (t *Table) Forget(src Source) {
	t.nodeMu.Lock()
	defer t.nodeMu.Unlock()
	m := t.nodes.Load()
	if m == nil {
		return
	}
	if ns, ok := (*m)[src.Node]; ok && ns.session == src.Session && ns.live {
		ns.live = false
		t.storeNode(*m, src.Node, ns)
	}
}

// storeNode publishes a copy of cur with node set (cur holds one entry per
// configured peer, so copies are small). Called with nodeMu held.
func (t *Table) storeNode(cur map[string]nodeState, node string, ns nodeState) {
	next := make(map[string]nodeState, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[node] = ns
	t.nodes.Store(&next)
}

// Client is what a table holds for one client address (Inspect).
type Client struct {
	// Connections are open here; Peers are those other nodes hold open
	// (live reports only), by node.
	Connections int
	Peers       map[string]int
	// Scopes are the named rates the client has a state under.
	Scopes []ScopeState
}

// ScopeState is a client's standing under one rate.
type ScopeState struct {
	Scope string
	// Ahead is how far the client's theoretical arrival time is ahead of
	// now: 0 with its whole burst available.
	Ahead time.Duration
	// RetryAfter is how long until its next request would be admitted.
	RetryAfter time.Duration
}

// Inspect reports what the table holds for client a.
func (t *Table) Inspect(a netip.Addr) Client {
	a = normal(a)
	reg := t.scopes.Load()
	nodes := t.nodes.Load()
	c := Client{Peers: map[string]int{}}
	now := t.now().UnixNano()
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if reg == nil {
		reg = &registry{byID: map[uint32]Scope{0: {Name: ListenerScope}}}
	}
	for id, sc := range reg.byID {
		st := s.m[key{a, id}]
		if st == nil {
			continue
		}
		if id == 0 {
			c.Connections = int(st.conns)
			for _, p := range st.peers {
				if p.valid(nodes) {
					c.Peers[p.node] = int(p.n)
				}
			}
		}
		ss := ScopeState{Scope: sc.Name, Ahead: time.Duration(max(st.tat-now, 0))}
		if sc.Rate.on() {
			ss.RetryAfter = max(ss.Ahead-sc.Rate.interval()*time.Duration(sc.Rate.Burst), 0)
		}
		c.Scopes = append(c.Scopes, ss)
	}
	slices.SortFunc(c.Scopes, func(x, y ScopeState) int { return cmp.Compare(x.Scope, y.Scope) })
	return c
}
