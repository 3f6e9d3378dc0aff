package balance

import (
	"math/bits"
	"slices"
	"strings"
)

const (
	// pointsPerWeight is how many ring points a unit of weight gets; about
	// 160 keeps each server's share within a few percent of its weight.
	pointsPerWeight = 160
	// maxPoints bounds a ring (8 bytes a point); larger weight sums get
	// proportionally fewer points per unit.
	maxPoints = 1 << 16
)

// ring is weighted consistent hashing (source_hash, uri_hash, header_hash).
//
// Every candidate owns Weight()*160 points on a 32-bit ring, placed by
// hashing its Name, so the same server lands on the same points in every
// picker and process. A key goes to the owner of the first point at or after
// the key's position. When that owner is unusable or tried, the pick walks on
// to the next distinct owner: only the keys of the missing server move, and
// they come back when it does. Adding a server moves about 1/n of the keys.
//
// The ring includes every candidate whatever its health; a pick compares its
// server's weight with the one the ring was built from and rebuilds it when
// an operator changed it (which moves keys, as a weight change must).
type ring struct {
	cands []Candidate
	rr    roundRobin // for picks without a key
	state lazy[ringState]
}

type point struct {
	pos   uint32
	owner int32
}

type ringState struct {
	points  []point // sorted by pos
	weights []int64 // weights the points were built from
	// start[b] is the first point whose pos>>shift is at least b, with a
	// final entry len(points): it narrows a lookup to a bucket holding about
	// one point, so picking does not slow down as the ring grows.
	start []int32
	shift uint
}

var _ Picker = (*ring)(nil)

func newRing(cands []Candidate) *ring {
	p := &ring{cands: cands}
	p.rr.cands = cands
	p.state.rebuild(p.build)
	return p
}

func (p *ring) Pick(in *Input) int {
	if in == nil || !in.HasKey {
		return p.rr.Pick(in)
	}
	s := p.state.load()
	pts := s.points
	if len(pts) == 0 {
		return -1
	}
	k := s.search(uint32(mix(in.Key) >> 32))
	o := int(pts[k].owner)
	c := p.cands[o]
	if weightOf(c) != s.weights[o] {
		p.state.rebuild(p.build)
	}
	if c.Usable() && !in.tried(o) {
		return o
	}
	return p.walk(pts, k, o, in)
}

// search returns the index of the first point at or after pos, wrapping
// around to 0 past the last.
func (s *ringState) search(pos uint32) int {
	b := pos >> s.shift
	lo, hi := int(s.start[b]), int(s.start[b+1])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.points[m].pos < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(s.points) {
		return 0
	}
	return lo
}

// walk moves along the ring from point k, whose owner o was refused, to the
// next owner that is usable and untried. Each owner is judged once; when all
// have been refused there is none.
func (p *ring) walk(pts []point, k, o int, in *Input) int {
	n := len(p.cands)
	var small [16]uint64 // owners refused so far, as a bit set
	refused := small[:]
	if words := (n + 63) / 64; words > len(small) {
		refused = make([]uint64, words)
	}
	refused[o/64] |= 1 << (o % 64)
	count := 1
	for range len(pts) - 1 {
		if count == n {
			return -1
		}
		if k++; k == len(pts) {
			k = 0
		}
		o := int(pts[k].owner)
		if refused[o/64]&(1<<(o%64)) != 0 {
			continue
		}
		if eligible(p.cands, o, in) {
			return o
		}
		refused[o/64] |= 1 << (o % 64)
		count++
	}
	return -1
}

// build places every candidate's points.
func (p *ring) build() *ringState {
	weights := weightsOf(p.cands)
	counts := apportion(weights, pointsPerWeight, maxPoints)
	var total int64
	for _, c := range counts {
		total += c
	}
	// Sort positions and owners packed in one word: far faster than a
	// comparison function over structs.
	packed := make([]uint64, 0, total)
	for i, c := range p.cands {
		h := HashString(c.Name())
		for j := range counts[i] {
			pos := mix(h+uint64(j+1)*prime1) >> 32
			packed = append(packed, pos<<32|uint64(i))
		}
	}
	slices.Sort(packed)
	pts := make([]point, len(packed))
	for i, v := range packed {
		pts[i] = point{pos: uint32(v >> 32), owner: int32(uint32(v))}
	}
	// Two servers rarely share a position; order those by name, not by
	// index, so reordering the candidates does not move keys.
	for i := 0; i < len(pts); {
		j := i + 1
		for j < len(pts) && pts[j].pos == pts[i].pos {
			j++
		}
		if j-i > 1 {
			slices.SortStableFunc(pts[i:j], func(a, b point) int {
				return strings.Compare(p.cands[a.owner].Name(), p.cands[b.owner].Name())
			})
		}
		i = j
	}
	s := &ringState{points: pts, weights: weights}
	nbits := min(max(1, bits.Len(uint(len(pts)))), 20)
	s.shift = uint(32 - nbits)
	s.start = make([]int32, 1<<nbits+1)
	k := 0
	for b := range s.start {
		for k < len(pts) && uint64(pts[k].pos)>>s.shift < uint64(b) {
			k++
		}
		s.start[b] = int32(k)
	}
	return s
}
