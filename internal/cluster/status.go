package cluster

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Status is what GET /api/v1/cluster shows.
type Status struct {
	Node string `json:"node"`
	// Mode is "peers" or "redis".
	Mode string `json:"mode"`
	// Listen is the bound replication endpoint (peers mode).
	Listen string `json:"listen,omitempty"`
	// Peers are the links to each peer (peers mode).
	Peers []LinkStatus `json:"peers,omitempty"`
	// Store is the link to Redis (redis mode).
	Store *LinkStatus `json:"store,omitempty"`
	// Refused counts connections refused at the handshake: another key
	// ring, a node that is not a peer, or not a fulcrum node at all.
	Refused uint64 `json:"refused"`
	// UnknownPool counts changes received for a pool without a table here
	// (the nodes' configurations differ).
	UnknownPool uint64 `json:"unknown_pool"`
	// Limits are the listeners whose limit tables are shared (peers mode).
	Limits []string `json:"limits,omitempty"`
	// IgnoredLimits counts limit records applied to nothing: a listener or
	// rate not limited here (the nodes' configurations differ), or
	// connection counts of a link session that has ended.
	IgnoredLimits uint64 `json:"ignored_limits"`
}

// LinkStatus is one link: to a peer, or to the store.
type LinkStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Connected: this node's changes flow to the peer (or Redis answers).
	Connected bool `json:"connected"`
	// Protocol is the connected session's version (peers mode): 2 shares
	// limits too, 1 (an older peer) persistence only.
	Protocol int `json:"protocol,omitempty"`
	// Inbound: the peer is connected to this node, pushing its changes
	// (peers mode).
	Inbound bool `json:"inbound"`
	// LastSync is when the peer (or Redis) last acknowledged a change or a
	// keepalive.
	LastSync *time.Time `json:"last_sync"`
	// LagSeconds is the age of the oldest change not yet acknowledged (0
	// when none waits).
	LagSeconds float64 `json:"lag_seconds"`
	// Queued counts changes waiting or in flight.
	Queued int `json:"queued"`
	// Sent counts changes acknowledged by the peer (or written to Redis);
	// Received counts changes applied from it.
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	// Resyncs counts full table syncs sent (each connection starts with
	// one; a full queue or a Redis outage causes more).
	Resyncs uint64 `json:"resyncs"`
	// Overflows counts the times the queue filled up.
	Overflows uint64 `json:"overflows"`
	// Errors counts failed connections, handshakes and writes.
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
}

// stats are one link's counters, written by its goroutine, read by Status.
type stats struct {
	connected atomic.Bool
	lastSync  atomic.Int64 // unix nanoseconds
	sent      atomic.Uint64
	received  atomic.Uint64
	resyncs   atomic.Uint64
	errors    atomic.Uint64

	mu       sync.Mutex
	lastErr  string
	inflight []flight // unacknowledged batches, oldest first
}

// flight is a batch sent and not yet acknowledged.
type flight struct {
	id    uint64
	n     int
	since time.Time // when its oldest change was queued
	sent  time.Time
}

func (s *stats) fail(err error) {
	s.errors.Add(1)
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

func (s *stats) synced(now time.Time) { s.lastSync.Store(now.UnixNano()) }

// fill sets the fields every link has.
func (s *stats) fill(ls *LinkStatus, q *queue, now time.Time) {
	ls.Connected = s.connected.Load()
	if ns := s.lastSync.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		ls.LastSync = &t
	}
	ls.Sent, ls.Received = s.sent.Load(), s.received.Load()
	ls.Resyncs, ls.Errors = s.resyncs.Load(), s.errors.Load()
	ls.Overflows = q.overflows.Load()
	n, oldest := q.pending()
	s.mu.Lock()
	ls.LastError = s.lastErr
	for _, f := range s.inflight {
		n += f.n
	}
	if len(s.inflight) > 0 && (oldest.IsZero() || s.inflight[0].since.Before(oldest)) {
		oldest = s.inflight[0].since
	}
	s.mu.Unlock()
	ls.Queued = n
	if n > 0 && !oldest.IsZero() {
		ls.LagSeconds = max(now.Sub(oldest).Seconds(), 0)
	}
}

// Status reports every link.
func (c *Cluster) Status() Status {
	now := c.o.Now()
	st := Status{Node: c.o.Node, Mode: "peers", Refused: c.refused.Load(), UnknownPool: c.unknown.Load(), IgnoredLimits: c.ignoredLim.Load()}
	for name := range *c.limits.Load() {
		st.Limits = append(st.Limits, name)
	}
	slices.Sort(st.Limits)
	if c.ln != nil {
		st.Listen = c.ln.Addr().String()
	}
	for _, p := range c.peers {
		ls := LinkStatus{Name: p.name, Address: p.addr}
		p.st.fill(&ls, p.q, now)
		ls.Protocol = int(p.proto.Load())
		in := c.in[p.name]
		ls.Inbound = in.conns.Load() > 0
		ls.Received = in.received.Load()
		st.Peers = append(st.Peers, ls)
	}
	if c.redis != nil {
		st.Mode = "redis"
		ls := LinkStatus{Name: "redis", Address: redactURL(c.redis.url)}
		c.redis.st.fill(&ls, c.redis.q, now)
		st.Store = &ls
	}
	return st
}

// ServeHTTP answers GET /api/v1/cluster with Status as JSON.
func (c *Cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(c.Status())
}
