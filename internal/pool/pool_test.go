package pool_test

import (
	"math"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

func TestStateCombinations(t *testing.T) {
	for _, tc := range []struct {
		health    pool.Health
		admin     pool.Admin
		state     pool.State
		usable    bool
		reachable bool
	}{
		{pool.HealthUp, pool.AdminNone, pool.StateUp, true, true},
		{pool.HealthDying, pool.AdminNone, pool.StateDying, true, true},
		{pool.HealthDown, pool.AdminNone, pool.StateDown, false, false},
		{pool.HealthUp, pool.AdminDraining, pool.StateDraining, false, true},
		{pool.HealthDying, pool.AdminDraining, pool.StateDraining, false, true},
		{pool.HealthDown, pool.AdminDraining, pool.StateDraining, false, false},
		{pool.HealthUp, pool.AdminDisabled, pool.StateDisabled, false, false},
		{pool.HealthDying, pool.AdminDisabled, pool.StateDisabled, false, false},
		{pool.HealthDown, pool.AdminDisabled, pool.StateDisabled, false, false},
	} {
		s := pool.NewServer("s", "127.0.0.1:1", 1)
		s.SetHealth(tc.health)
		s.SetAdmin(tc.admin)
		if got := s.State(); got != tc.state {
			t.Errorf("health %d admin %d: State() = %q, want %q", tc.health, tc.admin, got, tc.state)
		}
		if got := s.Usable(); got != tc.usable {
			t.Errorf("health %d admin %d: Usable() = %v, want %v", tc.health, tc.admin, got, tc.usable)
		}
		if got := s.Reachable(); got != tc.reachable {
			t.Errorf("health %d admin %d: Reachable() = %v, want %v", tc.health, tc.admin, got, tc.reachable)
		}
	}
}

func TestSettersReportChangeOnce(t *testing.T) {
	s := pool.NewServer("s", "127.0.0.1:1", 1)
	if s.State() != pool.StateUp || s.Health() != pool.HealthUp || s.Admin() != pool.AdminNone {
		t.Fatalf("new server: state %q, want up", s.State())
	}
	since := s.Since()
	for i, step := range []struct {
		set  func() bool
		want bool
	}{
		{func() bool { return s.SetHealth(pool.HealthUp) }, false},
		{func() bool { return s.SetHealth(pool.HealthDying) }, true},
		{func() bool { return s.SetHealth(pool.HealthDying) }, false},
		{func() bool { return s.SetHealth(pool.HealthDown) }, true},
		{func() bool { return s.SetHealth(pool.HealthDown) }, false},
		{func() bool { return s.SetAdmin(pool.AdminNone) }, false},
		{func() bool { return s.SetAdmin(pool.AdminDraining) }, true},
		{func() bool { return s.SetAdmin(pool.AdminDraining) }, false},
		{func() bool { return s.SetAdmin(pool.AdminDisabled) }, true},
		{func() bool { return s.SetAdmin(pool.AdminNone) }, true},
		{func() bool { return s.SetHealth(pool.HealthUp) }, true},
	} {
		if got := step.set(); got != step.want {
			t.Fatalf("step %d: changed = %v, want %v", i, got, step.want)
		}
	}
	if s.Since().Before(since) {
		t.Fatalf("Since() went back: %v before %v", s.Since(), since)
	}
}

func TestSettersConcurrentChangeReportedOnce(t *testing.T) {
	s := pool.NewServer("s", "127.0.0.1:1", 1)
	const n = 8
	changed := make(chan bool, n)
	for range n {
		go func() { changed <- s.SetHealth(pool.HealthDown) }()
	}
	count := 0
	for range n {
		if <-changed {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d concurrent SetHealth(down) reported a change, want exactly 1", count)
	}
}

func TestWeightAndCounters(t *testing.T) {
	s := pool.NewServer("s", "127.0.0.1:1", 0)
	if s.Weight() != 1 {
		t.Fatalf("weight 0: Weight() = %d, want 1", s.Weight())
	}
	s.SetWeight(5)
	if s.Weight() != 5 {
		t.Fatalf("SetWeight(5): Weight() = %d", s.Weight())
	}
	s.SetWeight(-3)
	if s.Weight() != 1 {
		t.Fatalf("SetWeight(-3): Weight() = %d, want 1", s.Weight())
	}
	s.Acquire()
	s.Acquire()
	if s.Active() != 2 {
		t.Fatalf("Active() = %d, want 2", s.Active())
	}
	s.Release(false)
	s.Release(true)
	if s.Active() != 0 || s.Requests() != 2 || s.Failures() != 1 {
		t.Fatalf("active %d requests %d failures %d, want 0 2 1", s.Active(), s.Requests(), s.Failures())
	}
}

func TestPoolLookup(t *testing.T) {
	a, b := pool.NewServer("a", "127.0.0.1:1", 1), pool.NewServer("b", "[::1]:2", 2)
	p := pool.New("app", "weighted", []*pool.Server{a, b})
	if p.Name() != "app" || p.Balance() != "weighted" || len(p.Servers()) != 2 {
		t.Fatalf("pool %q %q with %d servers", p.Name(), p.Balance(), len(p.Servers()))
	}
	if p.Server("b") != b || p.Server("c") != nil {
		t.Fatal("Server(name) did not find b, or found c")
	}
}

func TestHistogram(t *testing.T) {
	var h pool.Histogram
	if q := h.Quantile(0.5); !math.IsNaN(q) {
		t.Fatalf("empty histogram: Quantile(0.5) = %v, want NaN", q)
	}
	// 100 observations: 50 of 3ms (bucket <=5ms), 40 of 20ms (<=25ms),
	// 9 of 200ms (<=250ms), 1 of 20s (+Inf).
	for range 50 {
		h.Observe(3 * time.Millisecond)
	}
	for range 40 {
		h.Observe(20 * time.Millisecond)
	}
	for range 9 {
		h.Observe(200 * time.Millisecond)
	}
	h.Observe(20 * time.Second)

	cum, count, sum := h.Snapshot()
	if count != 100 {
		t.Fatalf("count = %d, want 100", count)
	}
	wantSum := 50*0.003 + 40*0.020 + 9*0.200 + 20
	if math.Abs(sum-wantSum) > 1e-9 {
		t.Fatalf("sum = %v, want %v", sum, wantSum)
	}
	wantCum := []uint64{50, 50, 90, 90, 90, 99, 99, 99, 99, 99, 99}
	for i := range wantCum {
		if cum[i] != wantCum[i] {
			t.Fatalf("cumulative[%d] (le %v) = %d, want %d (all %v)", i, pool.Bounds[i], cum[i], wantCum[i], cum)
		}
	}
	for _, tc := range []struct {
		q, lo, hi float64
	}{
		{0.25, 0, 0.005},      // inside the first bucket
		{0.5, 0.005, 0.005},   // its upper bound exactly
		{0.7, 0.01, 0.025},    // inside the 10-25ms bucket
		{0.95, 0.1, 0.25},     // inside the 100-250ms bucket
		{0.999, 10, 10},       // +Inf: the last finite bound
		{1, 10, 10},           // likewise
		{0.01, 0, 0.005 / 20}, // interpolated near zero
	} {
		if got := h.Quantile(tc.q); got < tc.lo || got > tc.hi {
			t.Errorf("Quantile(%v) = %v, want within [%v, %v]", tc.q, got, tc.lo, tc.hi)
		}
	}
	// Interpolation is linear inside the bucket: the median of the 40
	// observations in (10ms, 25ms] is half way.
	if got, want := h.Quantile(0.7), 0.0175; math.Abs(got-want) > 1e-9 {
		t.Errorf("Quantile(0.7) = %v, want %v", got, want)
	}
}
