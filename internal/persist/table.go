// Package persist keeps clients on the server that holds their session:
// tables for the table-based modes (source_ip, app_cookie, url), the sealed
// cookie of mode cookie, and the pure helpers that find a session key in a
// request or learn one from a response.
//
// It imports nothing internal: the key ring is reached through Sealer, the
// cluster through Change, Apply and the change hook, and the composition root
// owns the one long-lived loop (Snapshotter.Run).
package persist

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultTimeout is the idle expiry of an entry.
	DefaultTimeout = 30 * time.Minute
	// DefaultMaxEntries bounds a table.
	DefaultMaxEntries = 100000
	// MaxKeyLen is the longest key a table stores; longer keys are refused by
	// Pin so a client cannot make one entry cost more than this.
	MaxKeyLen = 256
	// MaxServerLen is the longest server name a table stores (config names
	// are at most 64 bytes).
	MaxServerLen = 255
)

// shardTarget is the number of entries per shard NewTable aims for when it
// chooses the shard count: small tables get one shard (exact eviction order),
// large ones up to maxShards (less contention).
const (
	shardTarget = 1024
	maxShards   = 64
)

// Op is what a Change does.
type Op uint8

const (
	// OpSet pins Key to Server, last used at Seen.
	OpSet Op = iota + 1
	// OpDelete removes Key.
	OpDelete
)

// String names the op for logs.
func (o Op) String() string {
	switch o {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	}
	return "op?"
}

// Change is one write to a table: what replication pushes to peers and what
// Apply takes from them.
type Change struct {
	Op  Op
	Key string
	// Server is the server name (OpSet only).
	Server string
	// Seen is when the key was last used, whole seconds (OpSet only).
	Seen time.Time
}

// Entry is one key as Range and Peek report it.
type Entry struct {
	Key    string
	Server string
	// Seen is when the key was last used, whole seconds; it expires at
	// Seen+timeout.
	Seen time.Time
}

// Options configure a Table. The zero value is usable.
type Options struct {
	// Timeout is the idle expiry: an entry not used for this long is gone
	// (default 30m; resolution one second, rounded up).
	Timeout time.Duration
	// MaxEntries bounds the table (default 100000). Each shard holds
	// MaxEntries/shards; a full shard evicts its least recently used entry.
	MaxEntries int
	// Shards is the number of shards, rounded up to a power of two (default:
	// about one per 1024 entries, 1..64).
	Shards int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnChange receives every local write (see SetOnChange).
	OnChange func(Change)
}

// Table maps session keys to server names. It is safe for concurrent use;
// each key lives in one of a fixed set of shards, each with its own lock, so
// there is no table-wide lock on the request path.
type Table struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	timeout  atomic.Uint32 // seconds
	now      func() time.Time
	onChange atomic.Pointer[func(Change)]
}

// entry is 40 bytes; the map from key to slot index adds about 30 more and
// the key's own bytes are one allocation.
type entry struct {
	key  string
	last uint32 // unix seconds of the last use
	sent uint32 // unix seconds of the last change emitted for this key
	prev int32  // towards the head (more recent); -1 at the head
	next int32  // towards the tail (older); -1 at the tail; free-list link
	srv  int32  // index into shard.servers
}

type server struct {
	name string
	n    int
}

// shard is one lock's worth of table. Entries live in a slab (ents) linked
// into an idle list by index: head is the most recently used, tail the least.
type shard struct {
	mu      sync.Mutex
	m       map[string]int32
	ents    []entry
	free    int32 // first free slot, -1 when none
	head    int32
	tail    int32
	max     int
	servers []server
	byName  map[string]int32
	dirty   bool // a key was added, changed or removed since the last save
	touched bool // a key was used since the last save
	_       [64]byte
}

// NewTable returns an empty table.
func NewTable(o Options) *Table {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := o.Shards
	if n <= 0 {
		n = min(max(o.MaxEntries/shardTarget, 1), maxShards)
	}
	pow := 1
	for pow < n {
		pow <<= 1
	}
	t := &Table{shards: make([]shard, pow), mask: uint64(pow - 1), seed: maphash.MakeSeed(), now: o.Now}
	t.SetTimeout(o.Timeout)
	per := (o.MaxEntries + pow - 1) / pow
	for i := range t.shards {
		s := &t.shards[i]
		s.m = map[string]int32{}
		s.byName = map[string]int32{}
		s.free, s.head, s.tail, s.max = -1, -1, -1, per
	}
	if o.OnChange != nil {
		t.SetOnChange(o.OnChange)
	}
	return t
}

// SetMaxEntries changes the bound (a reload) in place: a smaller bound
// evicts each shard's least recently used entries at once. The table keeps
// its shards, so requests keep pinning into it while it changes.
func (t *Table) SetMaxEntries(n int) {
	if n <= 0 {
		n = DefaultMaxEntries
	}
	per := (n + len(t.shards) - 1) / len(t.shards)
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.max = per
		for len(s.m) > s.max && s.tail >= 0 {
			s.remove(s.tail)
		}
		s.mu.Unlock()
	}
}

// SetTimeout changes the idle expiry (a reload); it applies to existing
// entries at their next use.
func (t *Table) SetTimeout(d time.Duration) {
	secs := (d + time.Second - 1) / time.Second
	t.timeout.Store(uint32(min(max(secs, 1), 1<<31)))
}

// Timeout returns the idle expiry.
func (t *Table) Timeout() time.Duration {
	return time.Duration(t.timeout.Load()) * time.Second
}

// SetOnChange sets the hook that receives every local write: Pin, Delete,
// and a Lookup that refreshes an entry's idle time (at most once per quarter
// timeout per key, so a peer's copy does not expire while the key is in
// use here). It is called with the shard locked, so changes to one key
// arrive in order; it must not block and must not call the Table. Apply,
// Load, expiry, eviction and DeleteServer do not call it. nil removes it.
func (t *Table) SetOnChange(f func(Change)) {
	if f == nil {
		t.onChange.Store(nil)
		return
	}
	t.onChange.Store(&f)
}

func (t *Table) clock() uint32 {
	return uint32(t.now().Unix())
}

func (t *Table) shardFor(h uint64) *shard {
	return &t.shards[h&t.mask]
}

// expired reports whether an entry last used at last is gone at now.
func (t *Table) expired(now, last uint32) bool {
	return now >= last && now-last >= t.timeout.Load()
}

// Lookup returns the server pinned to key and marks the key used. An
// expired key is removed and reported missing. It does not allocate.
func (t *Table) Lookup(key []byte) (server string, ok bool) {
	s := t.shardFor(maphash.Bytes(t.seed, key))
	s.mu.Lock()
	i, found := s.m[string(key)]
	server, ok = t.hit(s, i, found)
	s.mu.Unlock()
	return server, ok
}

// LookupString is Lookup for a string key.
func (t *Table) LookupString(key string) (server string, ok bool) {
	s := t.shardFor(maphash.String(t.seed, key))
	s.mu.Lock()
	i, found := s.m[key]
	server, ok = t.hit(s, i, found)
	s.mu.Unlock()
	return server, ok
}

// hit finishes a lookup with s locked.
func (t *Table) hit(s *shard, i int32, found bool) (string, bool) {
	if !found {
		return "", false
	}
	now := t.clock()
	e := &s.ents[i]
	if t.expired(now, e.last) {
		s.remove(i)
		return "", false
	}
	if now > e.last {
		e.last = now
		s.touched = true
	}
	s.toFront(i)
	name := s.servers[e.srv].name
	if now-e.sent >= t.refresh() || now < e.sent {
		if f := t.onChange.Load(); f != nil {
			e.sent = now
			(*f)(Change{Op: OpSet, Key: e.key, Server: name, Seen: time.Unix(int64(now), 0)})
		}
	}
	return name, true
}

// refresh is how often a key in use is re-sent to peers.
func (t *Table) refresh() uint32 {
	return max(t.timeout.Load()/4, 1)
}

// Peek returns key's entry without marking it used (for the admin API).
func (t *Table) Peek(key string) (Entry, bool) {
	s := t.shardFor(maphash.String(t.seed, key))
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.m[key]
	if !ok || t.expired(t.clock(), s.ents[i].last) {
		return Entry{}, false
	}
	return s.entry(i), true
}

// Pin pins key to server, as used now, and reports whether it was stored:
// an empty key, a key longer than MaxKeyLen or an empty or over-long server
// name is refused. A new key costs one allocation (its copy).
func (t *Table) Pin(key []byte, server string) bool {
	if len(key) == 0 || len(key) > MaxKeyLen || server == "" || len(server) > MaxServerLen {
		return false
	}
	s := t.shardFor(maphash.Bytes(t.seed, key))
	s.mu.Lock()
	i, found := s.m[string(key)]
	if !found {
		i = s.insert(string(key), s.serverID(server), t.clock())
	}
	t.pinned(s, i, server, !found)
	s.mu.Unlock()
	return true
}

// PinString is Pin for a string key.
func (t *Table) PinString(key, server string) bool {
	if key == "" || len(key) > MaxKeyLen || server == "" || len(server) > MaxServerLen {
		return false
	}
	s := t.shardFor(maphash.String(t.seed, key))
	s.mu.Lock()
	i, found := s.m[key]
	if !found {
		i = s.insert(key, s.serverID(server), t.clock())
	}
	t.pinned(s, i, server, !found)
	s.mu.Unlock()
	return true
}

// pinned finishes a Pin of slot i with s locked.
func (t *Table) pinned(s *shard, i int32, server string, fresh bool) {
	now := t.clock()
	e := &s.ents[i]
	changed := fresh || s.servers[e.srv].name != server
	if !fresh && changed {
		s.setServer(i, s.serverID(server))
	}
	e.last = max(e.last, now)
	s.toFront(i)
	s.touched = true
	if changed {
		s.dirty = true
	}
	if f := t.onChange.Load(); f != nil && (changed || now-e.sent >= t.refresh() || now < e.sent) {
		e.sent = now
		(*f)(Change{Op: OpSet, Key: e.key, Server: server, Seen: time.Unix(int64(now), 0)})
	}
}

// Delete removes key and reports whether it was there.
func (t *Table) Delete(key string) bool {
	s := t.shardFor(maphash.String(t.seed, key))
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.m[key]
	if !ok {
		return false
	}
	k := s.ents[i].key
	s.remove(i)
	if f := t.onChange.Load(); f != nil {
		(*f)(Change{Op: OpDelete, Key: k})
	}
	return true
}

// DeleteServer removes every key pinned to server (a server gone from the
// configuration) and returns how many. It does not call the change hook:
// every node applies the same configuration.
func (t *Table) DeleteServer(server string) int {
	n := 0
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		if id, ok := s.byName[server]; ok && s.servers[id].n > 0 {
			for i := s.head; i >= 0; {
				next := s.ents[i].next
				if s.ents[i].srv == id {
					s.remove(i)
					n++
				}
				i = next
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Apply applies a change from a peer without calling the change hook. An
// OpSet older than the timeout is ignored; one for a key this node has seen
// used more recently with another server loses (last writer wins, by Seen).
func (t *Table) Apply(c Change) {
	s := t.shardFor(maphash.String(t.seed, c.Key))
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.m[c.Key]
	switch c.Op {
	case OpDelete:
		if found {
			s.remove(i)
		}
	case OpSet:
		now, seen := t.clock(), clampSeen(c.Seen)
		if c.Key == "" || len(c.Key) > MaxKeyLen || c.Server == "" || len(c.Server) > MaxServerLen || t.expired(now, seen) {
			return
		}
		if !found {
			i := s.insert(c.Key, s.serverID(c.Server), seen)
			s.ents[i].sent = now
			return
		}
		e := &s.ents[i]
		if s.servers[e.srv].name != c.Server {
			if e.last > seen {
				return
			}
			s.setServer(i, s.serverID(c.Server))
			s.dirty = true
		}
		if seen > e.last {
			e.last = seen
			s.touched = true
		}
		e.sent = now
		s.toFront(i)
	}
}

func clampSeen(t time.Time) uint32 {
	return uint32(min(max(t.Unix(), 0), 1<<32-1))
}

// Len returns the number of entries, expired ones not yet swept included.
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

// Counts returns how many keys are pinned to each server (servers with none
// are left out). Expired entries not yet swept are counted.
func (t *Table) Counts() map[string]int {
	out := map[string]int{}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, sv := range s.servers {
			if sv.n > 0 {
				out[sv.name] += sv.n
			}
		}
		s.mu.Unlock()
	}
	return out
}

// Sweep removes expired entries and returns how many. The snapshot loop
// calls it; Lookup never returns an expired entry either way.
func (t *Table) Sweep() int {
	n := 0
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		now := t.clock()
		for i := s.head; i >= 0; {
			next := s.ents[i].next
			if t.expired(now, s.ents[i].last) {
				s.remove(i)
				n++
			}
			i = next
		}
		s.mu.Unlock()
	}
	return n
}

// Range calls f for every live entry, shard by shard, each shard from least
// to most recently used, until f returns false. f runs with no lock held:
// each shard is copied first, so a slow f (a snapshot, a full sync to a
// peer) never stalls requests, and entries written meanwhile may be missed.
func (t *Table) Range(f func(Entry) bool) {
	var buf []Entry
	for si := range t.shards {
		buf = t.copyShard(&t.shards[si], buf[:0], nil)
		for _, e := range buf {
			if !f(e) {
				return
			}
		}
	}
}

// copyShard appends s's live entries to buf, oldest first; with flags it
// also takes and clears the shard's dirty and touched flags.
func (t *Table) copyShard(s *shard, buf []Entry, flags *[2]bool) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := t.clock()
	for i := s.tail; i >= 0; i = s.ents[i].prev {
		if !t.expired(now, s.ents[i].last) {
			buf = append(buf, s.entry(i))
		}
	}
	if flags != nil {
		flags[0] = flags[0] || s.dirty
		flags[1] = flags[1] || s.touched
		s.dirty, s.touched = false, false
	}
	return buf
}
