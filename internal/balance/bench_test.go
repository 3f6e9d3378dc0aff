package balance_test

import (
	"fmt"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// BenchmarkPick shows the cost of one pick per algorithm as the pool grows.
// One server in ten is down, weights vary from 1 to 4.
func BenchmarkPick(b *testing.B) {
	for _, alg := range algorithms {
		for _, n := range []int{2, 10, 100} {
			b.Run(fmt.Sprintf("%s/n=%d", alg, n), func(b *testing.B) {
				ss := servers(n)
				for i, s := range ss {
					s.SetWeight(1 + i%4)
					if i%10 == 9 {
						s.SetHealth(pool.HealthDown)
					}
				}
				p := newPicker(b, alg, ss)
				in := balance.Input{HasKey: true}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					in.Key = uint64(i)
					p.Pick(&in)
				}
			})
		}
	}
}

// BenchmarkLeastConnBusy is least_conn when no server is idle: the scan
// reads every candidate.
func BenchmarkLeastConnBusy(b *testing.B) {
	for _, n := range []int{2, 10, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ss := servers(n)
			for i, s := range ss {
				for range 1 + i%7 {
					s.Acquire()
				}
			}
			p := newPicker(b, balance.LeastConn, ss)
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(nil)
			}
		})
	}
}

// BenchmarkPickParallel picks from every P at once over 10 servers.
func BenchmarkPickParallel(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(alg, func(b *testing.B) {
			p := newPicker(b, alg, servers(10, 1, 2, 3, 4))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				in := balance.Input{HasKey: true}
				for pb.Next() {
					in.Key++
					p.Pick(&in)
				}
			})
		})
	}
}

func BenchmarkHashString(b *testing.B) {
	for _, s := range []string{"10.1.2.3", "/api/v1/users/12345?expand=orders"} {
		b.Run(fmt.Sprintf("len=%d", len(s)), func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				balance.HashString(s)
			}
		})
	}
}

// BenchmarkBuild is the cost of building a picker (and of the rebuild a
// runtime weight change triggers) over 100 servers of weights 1..256.
func BenchmarkBuild(b *testing.B) {
	ss := servers(100)
	for i, s := range ss {
		s.SetWeight(1 + i*37%256)
	}
	for _, alg := range []string{balance.Weighted, balance.SourceHash} {
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newPicker(b, alg, ss)
			}
		})
	}
}
