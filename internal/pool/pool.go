// Package pool holds the servers of a pool and their hot state.
//
// A Server's state lives in atomics behind intention-revealing methods so the
// forwarding path reads it without locks. Health (set by keepalives) and the
// operator's administrative state (drain, disable) are kept apart and combined
// by State; Usable and Reachable answer the two questions the balancer asks.
//
// A Pool is immutable once built: a reload builds new Pools and carries the
// Servers that still exist (same name and address) across, so their state and
// counters survive.
package pool

import (
	"sync/atomic"
	"time"
)

// Health is what keepalives concluded about a server.
type Health uint32

const (
	HealthUp    Health = iota // passing
	HealthDying               // failing, fewer than fall failures so far; still gets traffic
	HealthDown                // failed fall times in a row; gets no traffic
)

// Admin is the operator's state for a server.
type Admin uint32

const (
	AdminNone     Admin = iota // normal
	AdminDraining              // no new clients; pinned clients keep coming
	AdminDisabled              // no traffic at all
)

// State is the combined state shown to operators.
type State string

const (
	StateUp       State = "up"
	StateDying    State = "dying"
	StateDown     State = "down"
	StateDraining State = "draining"
	StateDisabled State = "disabled"
)

// Server is one application server of a pool. Its identity (name, address) is
// fixed; everything else is safe for concurrent use.
type Server struct {
	name    string
	address string

	weight  atomic.Int32
	health  atomic.Uint32
	admin   atomic.Uint32
	changed atomic.Int64  // unix nanoseconds of the last state change
	changes atomic.Uint64 // number of state changes

	active   atomic.Int64  // requests or connections in flight
	requests atomic.Uint64 // completed requests (or TCP connections)
	failures atomic.Uint64 // requests that failed because of this server

	// Latency records the time from sending a request to the first byte of
	// the response.
	Latency Histogram
}

// NewServer returns a server that is up with the given weight (at least 1).
func NewServer(name, address string, weight int) *Server {
	s := &Server{name: name, address: address}
	if weight < 1 {
		weight = 1
	}
	s.weight.Store(int32(weight))
	s.changed.Store(time.Now().UnixNano())
	return s
}

// Name is the server's stable name within its pool.
func (s *Server) Name() string { return s.name }

// Address is host:port.
func (s *Server) Address() string { return s.address }

// Weight is the server's relative share of new clients.
func (s *Server) Weight() int { return int(s.weight.Load()) }

// SetWeight changes the weight; values below 1 become 1.
func (s *Server) SetWeight(w int) {
	if w < 1 {
		w = 1
	}
	s.weight.Store(int32(w))
}

// Health reports the keepalive verdict.
func (s *Server) Health() Health { return Health(s.health.Load()) }

// SetHealth records a keepalive verdict and reports whether it changed.
func (s *Server) SetHealth(h Health) (changed bool) {
	if Health(s.health.Swap(uint32(h))) == h {
		return false
	}
	s.noteChange()
	return true
}

// Admin reports the operator's state.
func (s *Server) Admin() Admin { return Admin(s.admin.Load()) }

// SetAdmin records the operator's state and reports whether it changed.
func (s *Server) SetAdmin(a Admin) (changed bool) {
	if Admin(s.admin.Swap(uint32(a))) == a {
		return false
	}
	s.noteChange()
	return true
}

// Usable reports whether the server may take new clients.
func (s *Server) Usable() bool {
	return Health(s.health.Load()) != HealthDown && Admin(s.admin.Load()) == AdminNone
}

// Reachable reports whether a client already pinned to the server may still
// reach it: draining servers keep their clients, disabled and down ones do not.
func (s *Server) Reachable() bool {
	return Health(s.health.Load()) != HealthDown && Admin(s.admin.Load()) != AdminDisabled
}

// State combines health and administrative state for display.
func (s *Server) State() State {
	switch Admin(s.admin.Load()) {
	case AdminDisabled:
		return StateDisabled
	case AdminDraining:
		return StateDraining
	}
	switch Health(s.health.Load()) {
	case HealthDying:
		return StateDying
	case HealthDown:
		return StateDown
	}
	return StateUp
}

func (s *Server) noteChange() {
	s.changed.Store(time.Now().UnixNano())
	s.changes.Add(1)
}

// Changes counts the server's state changes (health or administrative).
func (s *Server) Changes() uint64 { return s.changes.Load() }

// Since is when the state last changed.
func (s *Server) Since() time.Time { return time.Unix(0, s.changed.Load()) }

// Acquire counts one request or connection in flight. Pair it with Release.
func (s *Server) Acquire() { s.active.Add(1) }

// Release ends one request or connection in flight and counts it.
func (s *Server) Release(failed bool) {
	s.active.Add(-1)
	s.requests.Add(1)
	if failed {
		s.failures.Add(1)
	}
}

// Active is the number of requests or connections in flight.
func (s *Server) Active() int64 { return s.active.Load() }

// Requests is the number of completed requests or connections.
func (s *Server) Requests() uint64 { return s.requests.Load() }

// Failures is the number of requests that failed because of this server.
func (s *Server) Failures() uint64 { return s.failures.Load() }

// Pool is a named, immutable set of servers.
type Pool struct {
	name    string
	balance string
	servers []*Server
}

// New returns a pool of the given servers, in order, balanced by the named
// algorithm (kept for display; picking is the balance room's job).
func New(name, balance string, servers []*Server) *Pool {
	return &Pool{name: name, balance: balance, servers: servers}
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Balance names the pool's balancing algorithm.
func (p *Pool) Balance() string { return p.balance }

// Servers returns the pool's servers. The slice must not be modified.
func (p *Pool) Servers() []*Server { return p.servers }

// Server returns the server with the given name, or nil.
func (p *Pool) Server(name string) *Server {
	for _, s := range p.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}
