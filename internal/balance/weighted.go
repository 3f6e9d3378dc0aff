package balance

import (
	"math/rand/v2"
	"sync/atomic"
)

// maxSlots bounds a weighted schedule (4 bytes a slot); weights whose reduced
// sum is larger are scaled down to it.
const maxSlots = 1 << 14

// weighted is smooth weighted round robin without a lock. The interleaved
// order is computed once into a schedule of slots (candidate indices) that
// an atomic counter walks, so a pick is one atomic add and one slot read.
//
// The schedule is built from the weights alone, with every candidate in it.
// A pick landing on an unusable or tried candidate probes random slots
// instead, so the missing share spreads over the others by weight rather than
// falling on the next slot's owner. Each pick compares its server's weight
// with the one the schedule was built from; a change (an operator reweighting
// at runtime) rebuilds the schedule, so every change is seen within one cycle.
type weighted struct {
	cands []Candidate
	next  atomic.Uint64
	sched lazy[schedule]
}

type schedule struct {
	slots   []int32 // candidate index per turn
	weights []int64 // weights the slots were built from
}

var _ Picker = (*weighted)(nil)

func newWeighted(cands []Candidate) *weighted {
	p := &weighted{cands: cands}
	p.sched.rebuild(p.build)
	return p
}

func (p *weighted) Pick(in *Input) int {
	s := p.sched.load()
	if len(s.slots) == 0 {
		return -1
	}
	c := p.next.Add(1) - 1
	i := int(s.slots[c%uint64(len(s.slots))])
	cand := p.cands[i]
	if weightOf(cand) != s.weights[i] {
		p.sched.rebuild(p.build)
	}
	if cand.Usable() && !in.tried(i) {
		return i
	}
	return p.miss(s, in)
}

// weightedProbes is how many random slots a missed pick tries before
// scanning the candidates.
const weightedProbes = 8

// miss handles a pick whose slot holds an unusable or tried candidate.
func (p *weighted) miss(s *schedule, in *Input) int {
	for range weightedProbes {
		i := int(s.slots[scaled(rand.Uint32(), len(s.slots))])
		if eligible(p.cands, i, in) {
			return i
		}
	}
	n := len(p.cands)
	i := scaled(rand.Uint32(), n)
	for range n {
		if eligible(p.cands, i, in) {
			return i
		}
		if i++; i == n {
			i = 0
		}
	}
	return -1
}

// build interleaves the candidates by earliest deadline: candidate i's k-th
// turn is due at (k+φ_i)/w_i of the cycle, so its turns are evenly spaced and
// no server comes in bursts. The phases φ_i = (i+½)/n stagger the servers so
// equal weights alternate and light servers fall between a heavy one's turns
// (5:1:1 gives a a a b a a c). Each cycle holds exactly the (reduced) weights.
// A binary heap keeps the build at O(slots · log n).
func (p *weighted) build() *schedule {
	weights := weightsOf(p.cands)
	var g int64
	for _, w := range weights {
		g = gcd(g, w)
	}
	reduced := make([]int64, len(weights))
	for i, w := range weights {
		reduced[i] = w / g
	}
	counts := apportion(reduced, 1, maxSlots)
	var total int64
	for _, c := range counts {
		total += c
	}
	// Turn k of candidate i is due at (2n·k+2i+1)/(2n·c_i); the heap holds
	// each candidate's next turn as that fraction.
	n2 := 2 * int64(len(counts))
	heap := make([]turn, len(counts))
	for i, c := range counts {
		heap[i] = turn{num: 2*int64(i) + 1, den: c, idx: int32(i)}
	}
	for i := len(heap)/2 - 1; i >= 0; i-- {
		siftDown(heap, i)
	}
	slots := make([]int32, 0, total)
	for range total {
		slots = append(slots, heap[0].idx)
		heap[0].num += n2
		siftDown(heap, 0)
	}
	return &schedule{slots: slots, weights: weights}
}

// turn is a candidate's next turn in the schedule being built.
type turn struct {
	num, den int64 // due at num/den
	idx      int32
}

// before orders turns by due time, ties to the lower index.
func (a turn) before(b turn) bool {
	l, r := a.num*b.den, b.num*a.den
	return l < r || l == r && a.idx < b.idx
}

func siftDown(h []turn, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
