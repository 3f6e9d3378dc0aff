// Package health runs keepalives: it probes every server of every pool
// (tcp connect, HTTP HEAD/GET with a tolerant response reader and a learned
// body hash, or send/expect scripts), turns verdicts into up, dying and
// down with rise/fall, and keeps the evidence of every verdict so an
// operator can see why a server is down. It imports nothing internal: it
// reports through Target, which the composition root adapts to pool.Server.
package health

import (
	"fmt"
	"time"
)

// Health is a keepalive verdict. Its values equal pool.Health's, so the
// composition root converts with pool.Health(h).
type Health uint32

// Health values.
const (
	Up    Health = iota // passing
	Dying               // failing, fewer than fall failures; still gets traffic
	Down                // failed fall times in a row (or passive); gets no traffic
)

func (h Health) String() string {
	switch h {
	case Up:
		return "up"
	case Dying:
		return "dying"
	case Down:
		return "down"
	}
	return fmt.Sprintf("health(%d)", uint32(h))
}

// MarshalText renders h as up, dying or down.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// Target is the server a Checker reports to. SetHealth must be cheap and
// must not block (pool.Server stores an atomic); it reports whether the
// value changed.
type Target interface {
	Name() string
	Address() string
	SetHealth(Health) (changed bool)
}

// Transition is one change of a server's state.
type Transition struct {
	At     time.Time
	From   Health
	To     Health
	Reason string
}

// Change is a Transition of a named server, as given to Config.OnChange.
type Change struct {
	Pool    string
	Server  string
	Address string
	Transition
}
