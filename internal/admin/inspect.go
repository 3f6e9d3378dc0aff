package admin

import "time"

// Inspector is the optional view of the running balancer the dashboard
// needs beyond Runtime: its listeners and routes, keepalive history, the
// newest keepalive reply and the state service's counters. The root's
// Runtime implements it; a Runtime that does not is served with an empty
// topology and without the keepalive body diff or the state panel.
type Inspector interface {
	// Topology lists the running listeners, in config order.
	Topology() []ListenerInfo
	// HealthHistory returns a server's keepalive transitions, oldest
	// first, and false when the server has no keepalive.
	HealthHistory(pool, server string) ([]HealthChange, bool)
	// LastReply returns the newest keepalive reply of a server, and false
	// when there is none yet.
	LastReply(pool, server string) (Reply, bool)
	// StateStats returns the state service's counters, and false when no
	// state service runs.
	StateStats() (StateStats, bool)
}

// ListenerInfo is one running listener.
type ListenerInfo struct {
	Name     string      `json:"name"`
	Address  string      `json:"address"`  // bound address
	Protocol string      `json:"protocol"` // http, https or tcp
	Routes   []RouteInfo `json:"routes"`
}

// RouteInfo is one route of a listener: a rule and the pool it sends to.
// A tcp listener, or an http one with a single pool, has one route with
// the rule "*".
type RouteInfo struct {
	Rule string `json:"rule"`
	Pool string `json:"pool"`
}

// HealthChange is one keepalive transition: the server became To (up,
// dying or down) at At.
type HealthChange struct {
	At     time.Time `json:"at"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
}

// Reply is a keepalive verdict with what came back. Body is the raw bytes
// received (status line and head included), as much as the keepalive kept.
type Reply struct {
	At        time.Time
	OK        bool
	Reason    string
	Hash      string // hex SHA-256 of the judged body, when hashing
	Reference string // the learned reference hash at the time of reading
	Body      []byte
}

// StateStats are the state service's counters.
type StateStats struct {
	Sessions     float64 `json:"sessions"`
	LocksHeld    float64 `json:"locks_held"`
	LockWaiters  float64 `json:"lock_waiters"`
	LockWaits    float64 `json:"lock_waits"`
	LockTimeouts float64 `json:"lock_timeouts"`
	LocksBroken  float64 `json:"locks_broken"`
	Expiries     float64 `json:"expiries"`
}

// inspector returns the runtime's Inspector, or nil.
func (s *Server) inspector() Inspector {
	in, _ := s.rt.(Inspector)
	return in
}
