package balance_test

import (
	"fmt"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// BenchmarkPickScale is the cost of a pick as the farm grows from 1 pool of 2
// servers (and 1 of 10) to 100 pools of 10 (1,000 servers): each pick goes
// to the next pool in turn, so the 100 pickers and their servers compete for
// the caches as a busy farm's would. One server in ten is down, weights vary
// from 1 to 4.
func BenchmarkPickScale(b *testing.B) {
	for _, alg := range algorithms {
		for _, size := range []struct{ pools, servers int }{{1, 2}, {1, 10}, {100, 10}} {
			b.Run(fmt.Sprintf("%s/pools=%d,servers=%d", alg, size.pools, size.pools*size.servers), func(b *testing.B) {
				pickers := make([]balance.Picker, size.pools)
				for p := range pickers {
					ss := servers(size.servers)
					for i, s := range ss {
						s.SetWeight(1 + i%4)
						if i%10 == 9 {
							s.SetHealth(pool.HealthDown)
						}
					}
					pickers[p] = newPicker(b, alg, ss)
				}
				in := balance.Input{HasKey: true}
				b.ReportAllocs()
				p := 0
				for i := 0; b.Loop(); i++ {
					in.Key = uint64(i)
					pickers[p].Pick(&in)
					if p++; p == len(pickers) {
						p = 0
					}
				}
			})
		}
	}
}
