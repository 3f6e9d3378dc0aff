package balance

import "sync/atomic"

// roundRobin hands out usable candidates in turn, ignoring weights.
//
// The cursor holds the index due next and moves to just past the server
// actually picked (by compare-and-swap), so a server that is skipped does not
// hand a double share to its neighbour.
type roundRobin struct {
	cands []Candidate
	next  atomic.Uint64 // index due next, in [0, len(cands))
}

var _ Picker = (*roundRobin)(nil)

func newRoundRobin(cands []Candidate) *roundRobin { return &roundRobin{cands: cands} }

func (p *roundRobin) Pick(in *Input) int {
	n := len(p.cands)
	for {
		c := p.next.Load()
		i := int(c)
		found := -1
		for range n {
			if eligible(p.cands, i, in) {
				found = i
				break
			}
			if i++; i == n {
				i = 0
			}
		}
		if found < 0 {
			return -1
		}
		nx := found + 1
		if nx == n {
			nx = 0
		}
		if p.next.CompareAndSwap(c, uint64(nx)) {
			return found
		}
		// Another pick moved the cursor first: pick again from there.
	}
}
