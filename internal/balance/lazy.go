package balance

import "sync/atomic"

// lazy holds a structure derived from the candidates' weights (a schedule, a
// ring) and rebuilds it when a pick notices the weights moved. Readers never
// wait: they keep using the current value while one picker rebuilds.
type lazy[T any] struct {
	cur  atomic.Pointer[T]
	busy atomic.Bool
}

// load returns the current value.
func (l *lazy[T]) load() *T { return l.cur.Load() }

// rebuild replaces the value with build's result, unless another rebuild is
// already under way (it will see the same weights or newer ones).
func (l *lazy[T]) rebuild(build func() *T) {
	if !l.busy.CompareAndSwap(false, true) {
		return
	}
	defer l.busy.Store(false)
	l.cur.Store(build())
}

// weightsOf reads every candidate's weight, each at least 1.
func weightsOf(cands []Candidate) []int64 {
	w := make([]int64, len(cands))
	for i, c := range cands {
		w[i] = weightOf(c)
	}
	return w
}

// apportion turns weights into counts: w*unit each when the total stays
// within limit, otherwise shares of limit (rounded down, at least 1 each) so
// memory and build time stay bounded whatever the operator configures.
func apportion(weights []int64, unit, limit int64) []int64 {
	var sum int64
	for _, w := range weights {
		sum += w
	}
	counts := make([]int64, len(weights))
	for i, w := range weights {
		if sum*unit <= limit {
			counts[i] = w * unit
		} else {
			counts[i] = max(1, w*limit/sum)
		}
	}
	return counts
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
