package cluster

import (
	"strconv"
	"testing"
	"time"
)

// sessionKey is 24 bytes, like an ASP.NET session id.
func sessionKey(i int) string {
	s := strconv.Itoa(i)
	return "abcdefghijklmnopqrstuvwx"[:24-len(s)] + s
}

// BenchmarkReplicateDeltas: b.N pins on lb1 (through the change hook, as
// requests make them) until lb2 holds them all, over loopback.
func BenchmarkReplicateDeltas(b *testing.B) {
	ring := newRing(b)
	addrA, addrB := freeAddr(b), freeAddr(b)
	a := startNode(b, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring, maxEntries: 2 * b.N, queue: b.N + 1})
	c := startNode(b, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring, maxEntries: 2 * b.N})
	waitFor(b, 5*time.Second, "link up", func() bool { return a.c.Status().Peers[0].Connected })
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = sessionKey(i)
	}
	servers := []string{"app1", "app2", "app3"}
	b.ResetTimer()
	start := time.Now()
	for i, k := range keys {
		a.table.PinString(k, servers[i%3])
	}
	waitFor(b, time.Minute, "lb2 to hold every key", func() bool { return c.table.Len() == b.N })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkFullSync: lb2 connects to an lb1 holding 200,000 entries and
// receives the whole table.
func BenchmarkFullSync(b *testing.B) {
	const n = 200000
	ring := newRing(b)
	for range b.N {
		addrA, addrB := freeAddr(b), freeAddr(b)
		a := startNode(b, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring, maxEntries: 2 * n, queue: 1})
		for i := range n {
			a.table.PinString(sessionKey(i), "app1")
		}
		b.StartTimer()
		start := time.Now()
		c := startNode(b, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring, maxEntries: 2 * n})
		waitFor(b, time.Minute, "lb2 to hold the table", func() bool { return c.table.Len() == n })
		b.StopTimer()
		b.ReportMetric(n/time.Since(start).Seconds(), "entries/s")
		c.c.Stop()
		a.c.Stop()
	}
}
