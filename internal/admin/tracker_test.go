package admin

import (
	"math"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

func TestTimeline(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC)
	from, to := t0, t0.Add(time.Hour)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	health := []HealthChange{
		{At: at(-10), To: "down"}, // before the window: the window starts down
		{At: at(5), To: "up"},
		{At: at(20), To: "dying"},
		{At: at(21), To: "down"},
		{At: at(40), To: "up"},
	}
	admins := []adminChange{{At: at(30), State: pool.AdminDraining}, {At: at(50), State: pool.AdminNone}}
	got := timeline(from, to, health, admins, pool.StateUp)
	want := []struct {
		from, to int
		state    pool.State
	}{
		{0, 5, pool.StateDown}, {5, 20, pool.StateUp}, {20, 21, pool.StateDying}, {21, 30, pool.StateDown},
		{30, 50, pool.StateDraining}, {50, 60, pool.StateUp},
	}
	if len(got.Segments) != len(want) {
		t.Fatalf("got %d segments %+v, want %d", len(got.Segments), got.Segments, len(want))
	}
	for i, w := range want {
		s := got.Segments[i]
		if !s.From.Equal(at(w.from)) || !s.To.Equal(at(w.to)) || s.State != w.state {
			t.Errorf("segment %d = %s..%s %s, want %d..%d min %s", i, s.From, s.To, s.State, w.from, w.to, w.state)
		}
	}
	if !got.Complete {
		t.Error("a short history is complete")
	}
	if empty := timeline(from, to, nil, nil, pool.StateUp); len(empty.Segments) != 1 || empty.Segments[0].State != pool.StateUp {
		t.Errorf("no history: %+v, want one up segment", empty.Segments)
	}
}

func TestTrackerRates(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC)
	tr := newTracker(func() time.Time { return now })
	sv := pool.NewServer("a", "127.0.0.1:1", 1)
	pools := []*pool.Pool{pool.New("app", "round_robin", []*pool.Server{sv})}
	tr.sample(pools, nil)
	if r := tr.rates(sv); r.RPS != 0 || r.P50MS != nil {
		t.Fatalf("rates after one sample = %+v, want zero", r)
	}
	for i := 0; i < 20; i++ {
		sv.Acquire()
		sv.Latency.Observe(20 * time.Millisecond)
		sv.Release(i%4 == 0) // 5 of 20 fail
	}
	now = now.Add(2 * time.Second)
	tr.sample(pools, nil)
	r := tr.rates(sv)
	if r.RPS != 10 || r.ErrorRate != 0.25 {
		t.Errorf("rps %v, error rate %v; want 10 and 0.25", r.RPS, r.ErrorRate)
	}
	if r.P50MS == nil || *r.P50MS < 10 || *r.P50MS > 25 {
		t.Errorf("p50 = %v ms, want within the 10..25ms bucket", r.P50MS)
	}
	// A sample sooner than sampleEvery changes nothing.
	now = now.Add(100 * time.Millisecond)
	sv.Acquire()
	sv.Release(false)
	tr.sample(pools, nil)
	if got := tr.rates(sv); got.RPS != r.RPS {
		t.Errorf("rps moved to %v within sampleEvery", got.RPS)
	}
	// Servers no pool holds are forgotten.
	now = now.Add(time.Second)
	tr.sample(nil, nil)
	if len(tr.servers) != 0 {
		t.Errorf("tracker kept %d servers after they left", len(tr.servers))
	}
}

func TestTrackerBodies(t *testing.T) {
	tr := newTracker(time.Now)
	sv := pool.NewServer("a", "127.0.0.1:1", 1)
	t0 := time.Now()
	tr.noteReply(sv, Reply{At: t0, OK: true, Hash: "aaa", Reference: "aaa", Body: []byte("HTTP/1.1 200 OK\r\n\r\nv1")})
	tr.noteReply(sv, Reply{At: t0.Add(time.Second), OK: false, Hash: "bbb", Reference: "aaa", Reason: "hash changed",
		Body: []byte("HTTP/1.1 200 OK\r\n\r\nv2")})
	tr.noteReply(sv, Reply{At: t0.Add(2 * time.Second), OK: false, Reason: "connection refused"}) // no hash: ignored
	ref, fail := tr.bodies(sv)
	if ref.Hash != "aaa" || ref.Body != "HTTP/1.1 200 OK\r\n\r\nv1" {
		t.Errorf("reference = %+v", ref)
	}
	if fail.Hash != "bbb" || fail.Reason != "hash changed" || fail.Body != "HTTP/1.1 200 OK\r\n\r\nv2" {
		t.Errorf("failed = %+v", fail)
	}
}

func TestQuantile(t *testing.T) {
	cum := make([]uint64, len(pool.Bounds)+1)
	if !math.IsNaN(quantile(cum, 0.5)) {
		t.Error("empty histogram: want NaN")
	}
	var h pool.Histogram
	for i := 0; i < 100; i++ {
		h.Observe(time.Duration(i+1) * time.Millisecond)
	}
	c, n, _ := h.Snapshot()
	cum = append(c, n)
	for _, q := range []float64{0.5, 0.99} {
		if got, want := quantile(cum, q), h.Quantile(q); got != want {
			t.Errorf("quantile(%v) = %v, want %v (pool.Histogram's)", q, got, want)
		}
	}
}
