package health

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkGroup10k starts 10,000 tcp checkers against one loopback
// listener, waits until every one has checked once, and reports the memory
// the group holds per server (heap + goroutine stacks, results included).
// Run with -benchtime=1x.
func BenchmarkGroup10k(b *testing.B) {
	const servers = 10000
	addr := serve(b, func(c net.Conn) {})
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g := NewGroup(Config{})
		specs := make([]Spec, servers)
		o := Options{Interval: time.Second, Timeout: 5 * time.Second}.WithDefaults()
		for i := range specs {
			specs[i] = Spec{Pool: "p", Target: &fakeTarget{name: fmt.Sprint("s", i), addr: addr}, Options: o}
		}
		if err := g.Update(specs); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		g.Start(context.Background())
		cs := g.Checkers()
		eventually(b, "every server checked", func() bool {
			for _, c := range cs {
				if _, ok := c.Last(); !ok {
					return false
				}
			}
			return true
		})
		elapsed := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := (after.HeapAlloc + after.StackInuse) - (before.HeapAlloc + before.StackInuse)
		b.ReportMetric(float64(held)/servers, "B/server")
		b.ReportMetric(float64(held)/(1<<20), "MB/10k")
		b.ReportMetric(elapsed.Seconds(), "s-to-all-checked")
		for _, c := range cs {
			if r, _ := c.Last(); !r.OK {
				b.Fatalf("server %s: %s", c.Name(), r.Reason)
			}
		}
		g.Stop()
	}
}

// BenchmarkCheck runs http GET checks with body_match against one loopback
// server (in this process, allocating nothing per request, so allocs/op
// are the check's), one after another, through a Checker's prober and
// observe: on a kept connection (reuse) and on a new connection each
// (new). Profile the reuse path with -cpuprofile and look at the health
// package's share: the server's is the test's.
func BenchmarkCheck(b *testing.B) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"reuse", MaxReuseMax}, {"new", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			addr := serve(b, func(c net.Conn) {
				// One request per read: the checker writes each in one piece.
				buf, reply := make([]byte, 4096), []byte(ok200)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			})
			o := Options{Type: TypeHTTP, Method: "GET", BodyMatch: re("Running"), ReuseMax: tc.max}.WithDefaults()
			c := newChecker(&Config{Now: time.Now, Logger: discard()}, "p", &fakeTarget{name: "a", addr: addr}, o, nil)
			var idle idleConn
			b.ReportAllocs()
			for b.Loop() {
				res, keep := c.prober.check(b.Context(), &c.abort, idle)
				if !res.OK {
					b.Fatal(res.Reason)
				}
				c.observe(res)
				idle = keep
			}
			idle.close()
		})
	}
}
