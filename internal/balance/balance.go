// Package balance picks a server for each new request or connection.
//
// A Picker is built once over a fixed slice of candidates (a pool reload
// builds new pickers) and is then shared by every request of the pool. Pick is
// on the per-request hot path: it does not allocate, takes no locks and does
// no map lookups; per-picker state lives in atomics. What changes at runtime
// (usability, weight, connections in flight) is read from the candidates at
// pick time.
//
// The package is pure: it does no I/O and imports nothing internal.
package balance

import (
	"errors"
	"fmt"
)

// Algorithm names accepted by New.
const (
	RoundRobin = "round_robin" // in turn, ignoring weights
	Weighted   = "weighted"    // smooth weighted round robin
	LeastConn  = "least_conn"  // fewest requests in flight per unit of weight
	P2C        = "p2c"         // power of two random choices by load
	SourceHash = "source_hash" // consistent hash of the client address
	URIHash    = "uri_hash"    // consistent hash of the request URI
	HeaderHash = "header_hash" // consistent hash of a request header
)

// ErrUnknownAlgorithm is returned by New for an algorithm it does not know.
var ErrUnknownAlgorithm = errors.New("unknown balance algorithm")

// Candidate is what a picker needs to know about a server. *pool.Server
// satisfies it. All methods must be safe for concurrent use and cheap.
type Candidate interface {
	Name() string  // stable identity; places the server on the hash ring
	Weight() int   // relative share; values below 1 count as 1
	Active() int64 // requests or connections in flight
	Usable() bool  // may take new clients
}

// Input describes one pick. The zero value (or nil) is a plain pick.
type Input struct {
	// Key is the hash key of source_hash, uri_hash and header_hash; build it
	// with HashString or HashBytes. It need not be well mixed.
	Key uint64
	// HasKey is false when there is nothing to hash (the header is absent,
	// say); hash algorithms then fall back to round robin.
	HasKey bool
	// Tried holds the indices already tried for this request (retries); they
	// are never picked again. It is scanned linearly, so keep it short.
	Tried []int
}

// tried reports whether index i was already tried.
func (in *Input) tried(i int) bool {
	if in == nil {
		return false
	}
	for _, t := range in.Tried {
		if t == i {
			return true
		}
	}
	return false
}

// Picker chooses a server among its candidates.
type Picker interface {
	// Pick returns the index of the chosen candidate, or -1 when no
	// candidate is usable and untried. It is safe for concurrent use.
	Pick(in *Input) int
}

// New returns a picker running the named algorithm over cands. The slice is
// copied; its order defines the indices Pick returns. An empty slice is
// allowed: its picker always returns -1.
func New(algorithm string, cands []Candidate) (Picker, error) {
	cs := append([]Candidate(nil), cands...)
	switch algorithm {
	case RoundRobin:
		return newRoundRobin(cs), nil
	case Weighted:
		return newWeighted(cs), nil
	case LeastConn:
		return newLeastConn(cs), nil
	case P2C:
		return newP2C(cs), nil
	case SourceHash, URIHash, HeaderHash:
		return newRing(cs), nil
	}
	return nil, fmt.Errorf("building picker %q: %w", algorithm, ErrUnknownAlgorithm)
}

// eligible reports whether candidate i may be picked for in.
func eligible(cands []Candidate, i int, in *Input) bool {
	return cands[i].Usable() && !in.tried(i)
}

// weightOf is c's weight, at least 1.
func weightOf(c Candidate) int64 {
	w := c.Weight()
	if w < 1 {
		return 1
	}
	return int64(w)
}

// lighter reports whether load a/wa is below b/wb, without dividing.
func lighter(a, wa, b, wb int64) bool { return a*wb < b*wa }

// scaled maps x uniformly onto [0, bound) without dividing.
func scaled(x uint32, bound int) int {
	return int(uint64(x) * uint64(bound) >> 32)
}
