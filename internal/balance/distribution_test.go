package balance_test

import (
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// within reports whether got/total is want ± tol (fractions).
func within(got, total int, want, tol float64) bool {
	f := float64(got) / float64(total)
	return f >= want-tol && f <= want+tol
}

func TestRoundRobinEven(t *testing.T) {
	ss := servers(3, 5, 1, 1) // weights are ignored
	p := newPicker(t, balance.RoundRobin, ss)
	for i := range 9 {
		if got := p.Pick(nil); got != i%3 {
			t.Fatalf("pick %d: got %d, want %d", i, got, i%3)
		}
	}
	// A skipped server must not hand its turn to its neighbour twice.
	ss[1].SetHealth(pool.HealthDown)
	got := counts(p, 3, 30000)
	if got[0] != 15000 || got[2] != 15000 {
		t.Errorf("with 1 down: counts %v, want 15000 each on 0 and 2", got)
	}
}

func TestWeightedShares(t *testing.T) {
	ss := servers(2, 1, 3)
	p := newPicker(t, balance.Weighted, ss)
	const n = 100000
	got := counts(p, 2, n)
	if !within(got[0], n, .25, .02) || !within(got[1], n, .75, .02) {
		t.Errorf("weights 1:3: counts %v, want 25%%/75%% ± 2%%", got)
	}

	// The operator reweights at runtime: the next cycle follows.
	ss[0].SetWeight(3)
	got = counts(p, 2, n)
	if !within(got[0], n, .5, .02) {
		t.Errorf("reweighted 3:3: counts %v, want 50%% ± 2%% each", got)
	}
}

func TestWeightedSmooth(t *testing.T) {
	ss := servers(3, 5, 1, 1)
	p := newPicker(t, balance.Weighted, ss)
	run, longest := 0, 0
	prev := -1
	window := make([]int, 0, 7)
	for i := range 7000 {
		k := p.Pick(nil)
		if k == prev {
			run++
		} else {
			run = 1
		}
		prev = k
		longest = max(longest, run)
		window = append(window, k)
		if len(window) == 7 {
			// Every cycle of 7 holds exactly the weights.
			var c [3]int
			for _, w := range window {
				c[w]++
			}
			if c != [3]int{5, 1, 1} {
				t.Fatalf("cycle ending at pick %d: %v, want [5 1 1]", i, c)
			}
			window = window[:0]
		}
	}
	if longest > 3 {
		t.Errorf("weights 5:1:1: longest run of one server %d, want at most 3", longest)
	}
}

func TestWeightedUnusableSpreadsByWeight(t *testing.T) {
	ss := servers(3, 1, 4, 3)
	ss[1].SetHealth(pool.HealthDown)
	p := newPicker(t, balance.Weighted, ss)
	const n = 100000
	got := counts(p, 3, n)
	if !within(got[0], n, .25, .02) || !within(got[2], n, .75, .02) {
		t.Errorf("weights 1:(4 down):3: counts %v, want 25%%/75%% ± 2%% on 0 and 2", got)
	}
}

func TestLeastConnFollowsActive(t *testing.T) {
	ss := servers(3)
	p := newPicker(t, balance.LeastConn, ss)
	load := func(a ...int) {
		for i, n := range a {
			for ss[i].Active() < int64(n) {
				ss[i].Acquire()
			}
			for ss[i].Active() > int64(n) {
				ss[i].Release(false)
			}
		}
	}
	load(5, 0, 3)
	if got := p.Pick(nil); got != 1 {
		t.Errorf("loads 5,0,3: got %d, want 1", got)
	}
	load(1, 4, 0)
	if got := p.Pick(nil); got != 2 {
		t.Errorf("loads 1,4,0: got %d, want 2", got)
	}
	// Ties go round robin, not always to index 0.
	load(0, 0, 0)
	for i := range 6 {
		if got, want := p.Pick(nil), i%3; got != want {
			t.Errorf("tie, pick %d: got %d, want %d", i, got, want)
		}
	}
	// Load per unit of weight: 4 in flight on weight 4 beats 2 on weight 1.
	ss[0].SetWeight(4)
	load(4, 2, 2)
	if got := p.Pick(nil); got != 0 {
		t.Errorf("loads 4/4, 2/1, 2/1: got %d, want 0", got)
	}
}

func TestLeastConnWeightedShares(t *testing.T) {
	ss := servers(2, 1, 3)
	p := newPicker(t, balance.LeastConn, ss)
	// Keep picking without releasing: in-flight counts follow the weights.
	for range 4000 {
		ss[p.Pick(nil)].Acquire()
	}
	if a, b := ss[0].Active(), ss[1].Active(); a != 1000 || b != 3000 {
		t.Errorf("weights 1:3 after 4000 picks: active %d/%d, want 1000/3000", a, b)
	}
}

func TestP2CPrefersLessLoaded(t *testing.T) {
	ss := servers(4)
	for range 100 {
		ss[2].Acquire()
	}
	p := newPicker(t, balance.P2C, ss)
	got := counts(p, 4, 30000)
	if got[2] != 0 {
		t.Errorf("counts %v: the loaded server 2 was picked", got)
	}
	// With load tracking picks, the spread evens out.
	for range 100 {
		ss[2].Release(false)
	}
	for range 40000 {
		ss[p.Pick(nil)].Acquire()
	}
	for i, s := range ss {
		if a := s.Active(); a < 9900 || a > 10100 {
			t.Errorf("server %d holds %d of 40000, want 10000 ± 100", i, a)
		}
	}
}

func TestP2CUnloadedSpread(t *testing.T) {
	p := newPicker(t, balance.P2C, servers(4))
	const n = 100000
	got := counts(p, 4, n)
	for i := range 4 {
		if !within(got[i], n, .25, .02) {
			t.Errorf("counts %v, want 25%% ± 2%% each", got)
		}
	}
}
