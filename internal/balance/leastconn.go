package balance

import (
	"math/rand/v2"
	"sync/atomic"
)

// leastConn picks the usable candidate with the fewest requests in flight per
// unit of weight. It reads the candidates' live counters, so a pick under
// load costs O(n) atomic loads (it stops early at an idle server); p2c is the
// O(1) alternative for large busy pools. Ties go round robin: the scan starts
// just past the previous pick.
type leastConn struct {
	cands []Candidate
	next  atomic.Uint64 // where the next scan starts, in [0, len(cands))
}

var _ Picker = (*leastConn)(nil)

func newLeastConn(cands []Candidate) *leastConn { return &leastConn{cands: cands} }

func (p *leastConn) Pick(in *Input) int {
	n := len(p.cands)
	best, ba, bw := -1, int64(0), int64(1)
	i := int(p.next.Load())
	for range n {
		c := p.cands[i]
		if c.Usable() && !in.tried(i) {
			a := c.Active()
			if a <= 0 {
				// Nothing can be lighter, and among equals the first
				// from the rotating start wins: stop here.
				best = i
				break
			}
			if w := weightOf(c); best < 0 || lighter(a, w, ba, bw) {
				best, ba, bw = i, a, w
			}
		}
		if i++; i == n {
			i = 0
		}
	}
	if best >= 0 {
		nx := best + 1
		if nx == n {
			nx = 0
		}
		// A plain store: losing a race only changes which of equals wins.
		p.next.Store(uint64(nx))
	}
	return best
}

// p2c draws two distinct candidates at random and keeps the less loaded
// (Active per unit of weight). The random source is the runtime's per-thread
// generator behind math/rand/v2's top-level functions: no lock, no shared
// state, no allocation.
type p2c struct {
	cands []Candidate
}

var _ Picker = (*p2c)(nil)

func newP2C(cands []Candidate) *p2c { return &p2c{cands: cands} }

// p2cDraws is how many random pairs are tried before falling back to a scan
// (when most candidates are unusable or tried).
const p2cDraws = 2

func (p *p2c) Pick(in *Input) int {
	n := len(p.cands)
	switch n {
	case 0:
		return -1
	case 1:
		if eligible(p.cands, 0, in) {
			return 0
		}
		return -1
	}
	for range p2cDraws {
		r := rand.Uint64()
		i := scaled(uint32(r), n)
		j := scaled(uint32(r>>32), n-1)
		if j >= i {
			j++
		}
		if eligible(p.cands, i, in) && eligible(p.cands, j, in) {
			return p.better(i, j)
		}
	}
	// Fallback: the first two eligible candidates from a random start.
	first := -1
	i := scaled(rand.Uint32(), n)
	for range n {
		if eligible(p.cands, i, in) {
			if first >= 0 {
				return p.better(first, i)
			}
			first = i
		}
		if i++; i == n {
			i = 0
		}
	}
	return first
}

// better returns the less loaded of i and j; i on a tie (both are random).
func (p *p2c) better(i, j int) int {
	ci, cj := p.cands[i], p.cands[j]
	if lighter(cj.Active(), weightOf(cj), ci.Active(), weightOf(ci)) {
		return j
	}
	return i
}
