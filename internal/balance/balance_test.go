package balance_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

var _ balance.Candidate = (*pool.Server)(nil)

var algorithms = []string{
	balance.RoundRobin, balance.Weighted, balance.LeastConn, balance.P2C,
	balance.SourceHash, balance.URIHash, balance.HeaderHash,
}

// servers returns n up servers named s0..s(n-1); weights default to 1.
func servers(n int, weights ...int) []*pool.Server {
	ss := make([]*pool.Server, n)
	for i := range ss {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		ss[i] = pool.NewServer(fmt.Sprintf("s%d", i), fmt.Sprintf("10.0.0.%d:80", i), w)
	}
	return ss
}

func candidates(ss []*pool.Server) []balance.Candidate {
	cs := make([]balance.Candidate, len(ss))
	for i, s := range ss {
		cs[i] = s
	}
	return cs
}

func newPicker(t testing.TB, algorithm string, ss []*pool.Server) balance.Picker {
	t.Helper()
	p, err := balance.New(algorithm, candidates(ss))
	if err != nil {
		t.Fatalf("New(%q): %v", algorithm, err)
	}
	return p
}

// key returns the i-th test key, hashed as a caller would.
func key(i int) uint64 { return balance.HashString(fmt.Sprintf("/item/%d", i)) }

// counts picks n times with distinct keys and returns how often each index
// came out (index len(ss) counts -1).
func counts(p balance.Picker, servers, n int, tried ...int) []int {
	got := make([]int, servers+1)
	in := balance.Input{HasKey: true, Tried: tried}
	for i := range n {
		in.Key = uint64(i) * 0x9e3779b97f4a7c15
		k := p.Pick(&in)
		if k < 0 {
			k = servers
		}
		got[k]++
	}
	return got
}

func TestNewUnknownAlgorithm(t *testing.T) {
	_, err := balance.New("random", nil)
	if !errors.Is(err, balance.ErrUnknownAlgorithm) {
		t.Fatalf("New(random): got %v, want ErrUnknownAlgorithm", err)
	}
}

// TestConformance runs the properties every algorithm must have.
func TestConformance(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			t.Run("empty", func(t *testing.T) {
				p := newPicker(t, alg, nil)
				for _, in := range []*balance.Input{nil, {}, {HasKey: true, Key: 7}} {
					if got := p.Pick(in); got != -1 {
						t.Fatalf("Pick(%+v) on no candidates: got %d, want -1", in, got)
					}
				}
			})
			t.Run("unusable never picked", func(t *testing.T) {
				ss := servers(6)
				ss[1].SetHealth(pool.HealthDown)
				ss[2].SetAdmin(pool.AdminDraining)
				ss[3].SetAdmin(pool.AdminDisabled)
				ss[4].SetHealth(pool.HealthDying) // still usable
				got := counts(newPicker(t, alg, ss), len(ss), 10000)
				for _, i := range []int{1, 2, 3, 6} {
					if got[i] != 0 {
						t.Errorf("index %d picked %d times, want 0 (counts %v)", i, got[i], got)
					}
				}
				for _, i := range []int{0, 4, 5} {
					if got[i] == 0 {
						t.Errorf("usable index %d never picked (counts %v)", i, got)
					}
				}
			})
			t.Run("tried honoured", func(t *testing.T) {
				ss := servers(5)
				got := counts(newPicker(t, alg, ss), len(ss), 10000, 0, 2)
				if got[0] != 0 || got[2] != 0 || got[5] != 0 {
					t.Errorf("counts %v: tried 0 and 2 picked or -1 returned", got)
				}
			})
			t.Run("only one left", func(t *testing.T) {
				ss := servers(4)
				ss[3].SetHealth(pool.HealthDown)
				got := counts(newPicker(t, alg, ss), len(ss), 1000, 0, 2)
				if got[1] != 1000 {
					t.Errorf("counts %v, want every pick on 1", got)
				}
			})
			t.Run("none", func(t *testing.T) {
				ss := servers(3)
				p := newPicker(t, alg, ss)
				ss[0].SetHealth(pool.HealthDown)
				ss[2].SetAdmin(pool.AdminDisabled)
				for _, in := range []*balance.Input{
					{Tried: []int{1}}, {HasKey: true, Key: 99, Tried: []int{1}},
				} {
					if got := p.Pick(in); got != -1 {
						t.Errorf("Pick(%+v): got %d, want -1", in, got)
					}
				}
				ss[1].SetHealth(pool.HealthDown)
				if got := counts(p, 3, 100); got[3] != 100 {
					t.Errorf("all down: counts %v, want only -1", got)
				}
			})
			t.Run("zero allocations", func(t *testing.T) {
				ss := servers(10)
				ss[3].SetHealth(pool.HealthDown)
				p := newPicker(t, alg, ss)
				for _, in := range []*balance.Input{
					{}, {HasKey: true}, {HasKey: true, Tried: []int{4, 5}},
				} {
					i := 0
					allocs := testing.AllocsPerRun(1000, func() {
						i++
						in.Key = uint64(i) * 0x9e3779b97f4a7c15
						p.Pick(in)
					})
					if allocs != 0 {
						t.Errorf("Pick(%+v): %v allocations, want 0", in, allocs)
					}
				}
			})
		})
	}
}

// TestConcurrentPicks picks from many goroutines while health, weights and
// load change underneath; run with -race. Server 0 stays usable, so no pick
// may come back empty.
func TestConcurrentPicks(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			ss := servers(8, 1, 2, 3, 4)
			p := newPicker(t, alg, ss)
			stop := make(chan struct{})
			var flipper sync.WaitGroup
			flipper.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					s := ss[1+i%7]
					s.SetWeight(1 + i%5)
					if i%2 == 0 {
						s.SetHealth(pool.HealthDown)
					} else {
						s.SetHealth(pool.HealthUp)
					}
				}
			})
			var pickers sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				pickers.Go(func() {
					in := balance.Input{HasKey: g%2 == 0, Tried: []int{1 + g%7}}
					for i := range 5000 {
						in.Key = uint64(i*8 + g)
						k := p.Pick(&in)
						if k < 0 || k >= len(ss) || k == in.Tried[0] {
							errs <- fmt.Errorf("goroutine %d pick %d: got index %d", g, i, k)
							return
						}
						ss[k].Acquire()
						ss[k].Release(false)
					}
				})
			}
			pickers.Wait()
			close(stop)
			flipper.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
