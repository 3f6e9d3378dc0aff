package admin

import (
	"math"
	"sync"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// What the tracker keeps per server.
const (
	// rateWindow is how many one-second samples rates and latency
	// quantiles are computed over: requests/s is the counter delta across
	// the window divided by its length.
	rateWindow = 5
	// sampleEvery is the least time between two samples; requests for a
	// snapshot in between reuse the last one's rates.
	sampleEvery = 900 * time.Millisecond
	// keepAdminChanges bounds the operator actions kept per server for the
	// state timeline (an hour of them at most, see timelineSpan).
	keepAdminChanges = 100
	// timelineSpan is how far back the state timeline goes.
	timelineSpan = time.Hour
)

// tracker derives what the counters alone cannot say: rates and windowed
// latency quantiles (from deltas between samples), the operator actions of
// the last hour, and the keepalive bodies the diff needs. It is driven by
// the requests that read it (the event stream samples at most once per
// sampleEvery), so it owns no goroutine. Servers are keyed by pointer,
// which survives a reload exactly when the server's state does.
type tracker struct {
	now func() time.Time

	mu      sync.Mutex
	last    time.Time // time of the newest sample
	servers map[*pool.Server]*tracked
}

type tracked struct {
	samples []sample // oldest first, at most rateWindow+1
	rates   rates

	admin []adminChange // operator actions, oldest first

	refBody  []byte // the newest body seen whose hash was the reference
	refHash  string
	refAt    time.Time
	failBody []byte // the newest body seen that failed the reference hash
	failHash string
	failWhy  string
	failAt   time.Time
	seen     bool // touched by the newest sample (pruning)
}

type sample struct {
	at       time.Time
	requests uint64
	failures uint64
	buckets  []uint64 // cumulative latency buckets, pool.Bounds, then +Inf
}

// rates are the numbers derived from the window.
type rates struct {
	RPS       float64  `json:"rps"`
	ErrorRate float64  `json:"error_rate"` // failed / completed, 0..1
	P50MS     *float64 `json:"p50_ms"`     // nil without requests in the window
	P99MS     *float64 `json:"p99_ms"`
}

// adminChange is one administrative state an operator set.
type adminChange struct {
	At    time.Time
	State pool.Admin
}

func newTracker(now func() time.Time) *tracker {
	return &tracker{now: now, servers: map[*pool.Server]*tracked{}}
}

// sample records the counters of every server when the last sample is older
// than sampleEvery, computes the rates, and reads keepalive replies for the
// body diff. It forgets servers no pool holds any more.
func (t *tracker) sample(pools []*pool.Pool, in Inspector) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < sampleEvery {
		return
	}
	t.last = now
	for _, tr := range t.servers {
		tr.seen = false
	}
	for _, p := range pools {
		for _, sv := range p.Servers() {
			tr := t.getLocked(sv)
			tr.seen = true
			tr.add(now, sv)
			if in != nil {
				if r, ok := in.LastReply(p.Name(), sv.Name()); ok {
					tr.noteReply(r)
				}
			}
		}
	}
	for sv, tr := range t.servers {
		if !tr.seen {
			delete(t.servers, sv)
		}
	}
}

func (t *tracker) getLocked(sv *pool.Server) *tracked {
	tr := t.servers[sv]
	if tr == nil {
		tr = &tracked{seen: true}
		t.servers[sv] = tr
	}
	return tr
}

// rates returns the server's current rates (zero before two samples).
func (t *tracker) rates(sv *pool.Server) rates {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr := t.servers[sv]; tr != nil {
		return tr.rates
	}
	return rates{}
}

// noteAdmin records an operator action on sv.
func (t *tracker) noteAdmin(sv *pool.Server, a pool.Admin) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.getLocked(sv)
	tr.admin = append(tr.admin, adminChange{At: t.now(), State: a})
	if n := len(tr.admin) - keepAdminChanges; n > 0 {
		tr.admin = append(tr.admin[:0], tr.admin[n:]...)
	}
}

// noteReply records a keepalive reply of sv (the detail page reads the
// newest one itself, so the diff works without a stream open).
func (t *tracker) noteReply(sv *pool.Server, r Reply) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.getLocked(sv).noteReply(r)
}

// bodies returns what the tracker saw of sv's keepalive bodies.
func (t *tracker) bodies(sv *pool.Server) (ref, fail bodyJSON) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.servers[sv]
	if tr == nil {
		return bodyJSON{}, bodyJSON{}
	}
	if tr.refBody != nil {
		ref = bodyJSON{At: tr.refAt, Hash: tr.refHash, Body: string(tr.refBody)}
	}
	if tr.failBody != nil {
		fail = bodyJSON{At: tr.failAt, Hash: tr.failHash, Reason: tr.failWhy, Body: string(tr.failBody)}
	}
	return ref, fail
}

// adminChanges returns the operator actions recorded for sv.
func (t *tracker) adminChanges(sv *pool.Server) []adminChange {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr := t.servers[sv]; tr != nil {
		return append([]adminChange(nil), tr.admin...)
	}
	return nil
}

func (tr *tracked) noteReply(r Reply) {
	if r.Hash == "" || r.Reference == "" {
		return
	}
	switch {
	case r.OK && r.Hash == r.Reference:
		if r.Hash != tr.refHash || !r.At.Equal(tr.refAt) {
			tr.refBody, tr.refHash, tr.refAt = clone(r.Body), r.Hash, r.At
		}
	case !r.OK && r.Hash != r.Reference:
		if !r.At.Equal(tr.failAt) {
			tr.failBody, tr.failHash, tr.failWhy, tr.failAt = clone(r.Body), r.Hash, r.Reason, r.At
		}
	}
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

func (tr *tracked) add(now time.Time, sv *pool.Server) {
	cum, count, _ := sv.Latency.Snapshot()
	s := sample{at: now, requests: sv.Requests(), failures: sv.Failures(), buckets: append(cum, count)}
	tr.samples = append(tr.samples, s)
	if n := len(tr.samples) - (rateWindow + 1); n > 0 {
		tr.samples = append(tr.samples[:0], tr.samples[n:]...)
	}
	first := tr.samples[0]
	secs := now.Sub(first.at).Seconds()
	if len(tr.samples) < 2 || secs <= 0 {
		tr.rates = rates{}
		return
	}
	dReq := s.requests - first.requests
	dFail := s.failures - first.failures
	r := rates{RPS: float64(dReq) / secs}
	if dReq > 0 {
		r.ErrorRate = math.Min(1, float64(dFail)/float64(dReq))
	}
	delta := make([]uint64, len(s.buckets))
	for i := range s.buckets {
		delta[i] = s.buckets[i] - first.buckets[i]
	}
	if q := quantile(delta, 0.5); !math.IsNaN(q) {
		ms := q * 1000
		r.P50MS = &ms
	}
	if q := quantile(delta, 0.99); !math.IsNaN(q) {
		ms := q * 1000
		r.P99MS = &ms
	}
	tr.rates = r
}

// quantile estimates the q-quantile in seconds from cumulative bucket counts
// over pool.Bounds (the last entry is the total), interpolating inside the
// bucket that holds it as pool.Histogram.Quantile does; NaN when empty.
func quantile(cum []uint64, q float64) float64 {
	count := cum[len(cum)-1]
	if count == 0 {
		return math.NaN()
	}
	rank := q * float64(count)
	lower, prev := 0.0, uint64(0)
	for i, b := range pool.Bounds {
		c := cum[i]
		if float64(c) >= rank {
			in := float64(c - prev)
			if in == 0 {
				return b
			}
			return lower + (b-lower)*(rank-float64(prev))/in
		}
		lower, prev = b, c
	}
	return pool.Bounds[len(pool.Bounds)-1]
}
