package balance_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

const ringKeys = 100000

// assign maps ringKeys keys to servers.
func assign(p balance.Picker) []int {
	got := make([]int, ringKeys)
	for i := range got {
		got[i] = p.Pick(&balance.Input{Key: key(i), HasKey: true})
	}
	return got
}

func TestRingSpread(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		want    []float64
	}{
		{[]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, []float64{.1, .1, .1, .1, .1, .1, .1, .1, .1, .1}},
		{[]int{1, 3}, []float64{.25, .75}},
		{[]int{2, 1, 1}, []float64{.5, .25, .25}},
	} {
		t.Run(fmt.Sprint(tc.weights), func(t *testing.T) {
			p := newPicker(t, balance.URIHash, servers(len(tc.weights), tc.weights...))
			share := make([]int, len(tc.weights))
			for _, s := range assign(p) {
				share[s]++
			}
			for i, w := range tc.want {
				if !within(share[i], ringKeys, w, .03) {
					t.Errorf("server %d: %d of %d keys, want %.0f%% ± 3%%", i, share[i], ringKeys, w*100)
				}
			}
		})
	}
}

func TestRingStable(t *testing.T) {
	// The same key goes to the same server, in another picker over the
	// same servers too (another process, a reload).
	ss := servers(10)
	a, b := newPicker(t, balance.SourceHash, ss), newPicker(t, balance.HeaderHash, servers(10))
	for i := range 1000 {
		in := &balance.Input{Key: key(i), HasKey: true}
		x := a.Pick(in)
		if y, z := a.Pick(in), b.Pick(in); y != x || z != x {
			t.Fatalf("key %d: picks %d, %d, %d; want the same", i, x, y, z)
		}
	}
	// Placement follows names, not indices: reordering moves no key.
	reversed := servers(10)
	slices.Reverse(reversed)
	c := newPicker(t, balance.SourceHash, reversed)
	for i := range 1000 {
		in := &balance.Input{Key: key(i), HasKey: true}
		if x, y := a.Pick(in), c.Pick(in); ss[x].Name() != reversed[y].Name() {
			t.Fatalf("key %d: %s in order, %s reversed", i, ss[x].Name(), reversed[y].Name())
		}
	}
}

func TestRingRemoveMovesOnlyItsKeys(t *testing.T) {
	ss := servers(10)
	p := newPicker(t, balance.SourceHash, ss)
	before := assign(p)
	ss[4].SetHealth(pool.HealthDown)
	after := assign(p)
	moved := 0
	for i := range before {
		switch {
		case before[i] == 4 && after[i] == 4:
			t.Fatalf("key %d still on the down server", i)
		case before[i] == 4:
			moved++
		case after[i] != before[i]:
			t.Fatalf("key %d moved from %d to %d, but only server 4 went down", i, before[i], after[i])
		}
	}
	if moved == 0 {
		t.Fatal("server 4 had no keys")
	}
	// Its keys spread over the others rather than landing on one neighbour.
	share := make([]int, 10)
	for i := range before {
		if before[i] == 4 {
			share[after[i]]++
		}
	}
	for s, n := range share {
		if s != 4 && n > moved/3 {
			t.Errorf("server %d took %d of the %d moved keys", s, n, moved)
		}
	}
	// Back up: every key returns.
	ss[4].SetHealth(pool.HealthUp)
	for i, s := range assign(p) {
		if s != before[i] {
			t.Fatalf("key %d: on %d after recovery, want %d", i, s, before[i])
		}
	}
}

func TestRingTriedMovesToNextDistinct(t *testing.T) {
	ss := servers(10)
	p := newPicker(t, balance.URIHash, ss)
	ss[7].SetHealth(pool.HealthDown)
	down := assign(p) // where keys go while 7 is down
	ss[7].SetHealth(pool.HealthUp)
	for i := range 2000 {
		in := &balance.Input{Key: key(i), HasKey: true}
		if p.Pick(in) != 7 {
			continue
		}
		in.Tried = []int{7}
		if got := p.Pick(in); got != down[i] {
			t.Errorf("key %d, 7 tried: got %d, want %d (as when 7 is down)", i, got, down[i])
		}
	}
}

func TestRingAddMovesAboutOneNth(t *testing.T) {
	before := assign(newPicker(t, balance.SourceHash, servers(10)))
	after := assign(newPicker(t, balance.SourceHash, servers(11)))
	moved := 0
	for i := range before {
		if after[i] != before[i] {
			moved++
			if after[i] != 10 {
				t.Fatalf("key %d moved from %d to %d, not to the new server", i, before[i], after[i])
			}
		}
	}
	if f := float64(moved) / ringKeys; f < .05 || f > .15 {
		t.Errorf("adding an 11th server moved %.1f%% of keys, want 5%%-15%% (1/11 ≈ 9.1%%)", f*100)
	} else {
		t.Logf("adding an 11th server moved %.2f%% of keys", f*100)
	}
}

func TestRingWeightChange(t *testing.T) {
	ss := servers(2)
	p := newPicker(t, balance.URIHash, ss)
	ss[1].SetWeight(3)
	assign(p) // picks notice the new weight and rebuild the ring
	share := 0
	for _, s := range assign(p) {
		if s == 1 {
			share++
		}
	}
	if !within(share, ringKeys, .75, .03) {
		t.Errorf("reweighted 1:3: server 1 has %d of %d keys, want 75%% ± 3%%", share, ringKeys)
	}
}

func TestRingWithoutKeyIsRoundRobin(t *testing.T) {
	p := newPicker(t, balance.HeaderHash, servers(3))
	for i := range 9 {
		if got := p.Pick(&balance.Input{Key: 42}); got != i%3 {
			t.Fatalf("pick %d without key: got %d, want %d", i, got, i%3)
		}
	}
}

func TestHash(t *testing.T) {
	for _, s := range []string{"", "a", "1234567", "12345678", "123456789", "/api/v1/users?id=42&sort=asc"} {
		if a, b := balance.HashString(s), balance.HashBytes([]byte(s)); a != b {
			t.Errorf("%q: HashString %#x, HashBytes %#x", s, a, b)
		}
	}
	// The values are part of the contract: changing them moves every
	// client of every hash pool on upgrade.
	for s, want := range map[string]uint64{
		"":            0xff2e69699c4857e,
		"10.0.0.1":    0xb9227e0fec9fffe9,
		"/index.html": 0xe39c8dd558fc57a7,
	} {
		if got := balance.HashString(s); got != want {
			t.Errorf("HashString(%q) = %#x, want %#x", s, got, want)
		}
	}
	seen := map[uint64]string{}
	for i := range 100000 {
		s := fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255)
		h := balance.HashString(s)
		if o, dup := seen[h]; dup {
			t.Fatalf("HashString(%q) == HashString(%q)", s, o)
		}
		seen[h] = s
	}
	b := []byte("/static/app.js")
	if n := testing.AllocsPerRun(100, func() { balance.HashBytes(b) }); n != 0 {
		t.Errorf("HashBytes: %v allocations, want 0", n)
	}
}
