package persist

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

const benchEntries = 1_000_000

// benchKey is a 24-character key, the size of an ASP.NET session id.
func benchKey(dst []byte, i int) []byte {
	dst = append(dst[:0], "sess00000000000000000000"...)
	for j := len(dst) - 1; i > 0; j-- {
		dst[j] = byte('0' + i%10)
		i /= 10
	}
	return dst
}

func fullTable(b *testing.B, n int) (*Table, float64) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb := NewTable(Options{MaxEntries: n})
	servers := make([]string, 16)
	for i := range servers {
		servers[i] = "web" + strconv.Itoa(i)
	}
	var key []byte
	for i := range n {
		key = benchKey(key, i)
		tb.Pin(key, servers[i%len(servers)])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tb)
	return tb, float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkTable1M reports the memory of a table of one million 24-byte
// keys and the cost of lookups (hits) and inserts (into the full table,
// so each one also evicts) against it.
func BenchmarkTable1M(b *testing.B) { benchTable(b, benchEntries) }

// BenchmarkTable10k is the same with a table that fits in the CPU caches.
func BenchmarkTable10k(b *testing.B) { benchTable(b, 10_000) }

func benchTable(b *testing.B, n int) {
	tb, perEntry := fullTable(b, n)
	b.Run("lookup", func(b *testing.B) {
		b.ReportMetric(perEntry, "heapB/entry")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var key []byte
			i := 0
			for pb.Next() {
				key = benchKey(key, (i*7919)%n)
				tb.Lookup(key) // a few keys were evicted by full shards: misses cost the same
				i++
			}
		})
	})
	b.Run("lookup-serial", func(b *testing.B) {
		var key []byte
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			key = benchKey(key, (i*7919)%n)
			tb.Lookup(key)
		}
	})
	b.Run("insert", func(b *testing.B) {
		var key []byte
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			key = benchKey(key, n+i)
			tb.Pin(key, "web1")
		}
	})
	b.Run("insert-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var key []byte
			i := 0
			for pb.Next() {
				key = fmt.Appendf(key[:0], "p%p-%d", &key, i)
				tb.Pin(key, "web2")
				i++
			}
		})
	})
}
