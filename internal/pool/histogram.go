package pool

import (
	"math"
	"sync/atomic"
	"time"
)

// Bounds are the upper bounds, in seconds, of the latency histogram buckets.
// They match Prometheus' default buckets, so the admin API can export them
// unchanged.
var Bounds = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram is a lock-free latency histogram with fixed buckets. The zero
// value is ready to use.
type Histogram struct {
	counts [len(Bounds) + 1]atomic.Uint64 // last bucket is +Inf
	sum    atomic.Uint64                  // nanoseconds
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(Bounds) && sec > Bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(uint64(d))
}

// Snapshot returns cumulative bucket counts (as Prometheus expects), the
// total count and the sum in seconds.
func (h *Histogram) Snapshot() (cumulative []uint64, count uint64, sum float64) {
	cumulative = make([]uint64, len(Bounds))
	var c uint64
	for i := range Bounds {
		c += h.counts[i].Load()
		cumulative[i] = c
	}
	count = c + h.counts[len(Bounds)].Load()
	return cumulative, count, float64(h.sum.Load()) / 1e9
}

// Quantile estimates the q-quantile (0..1) in seconds by linear
// interpolation inside the bucket that holds it; NaN when empty.
func (h *Histogram) Quantile(q float64) float64 {
	cum, count, _ := h.Snapshot()
	if count == 0 {
		return math.NaN()
	}
	rank := q * float64(count)
	lower, prev := 0.0, uint64(0)
	for i, c := range cum {
		if float64(c) >= rank {
			in := float64(c - prev)
			if in == 0 {
				return Bounds[i]
			}
			return lower + (Bounds[i]-lower)*(rank-float64(prev))/in
		}
		lower, prev = Bounds[i], c
	}
	return Bounds[len(Bounds)-1]
}
