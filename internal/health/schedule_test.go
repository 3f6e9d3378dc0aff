package health

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Probes reuse pooled buffers; a Result must own its evidence.
func TestEvidenceSurvivesPooling(t *testing.T) {
	a := serve(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"))
	b := serve(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n"+strings.Repeat("B", 300)))
	o := Options{Type: TypeHTTP, Method: "GET"}.WithDefaults()
	first := checkOnce(t, a, o)
	sent, recv := string(first.Sent), string(first.Received)
	for range 20 {
		checkOnce(t, b, o)
	}
	if string(first.Sent) != sent || string(first.Received) != recv {
		t.Errorf("got evidence %q / %q after later probes, want %q / %q", first.Sent, first.Received, sent, recv)
	}
	if cap(first.Received) != len(first.Received) {
		t.Errorf("got received cap %d, want %d (no room to append into another result)", cap(first.Received), len(first.Received))
	}
}

func checkOnce(t *testing.T, addr string, o Options) Result {
	t.Helper()
	r := Probe(t.Context(), nil, addr, o)
	if !r.OK {
		t.Fatalf("probe %s: %s", addr, r.Reason)
	}
	return r
}

// Kept results: at most KeepResults, oldest first; passing ones other
// than the newest lose their evidence, failures keep theirs.
func TestKeptResults(t *testing.T) {
	c := newChecker(&Config{Now: time.Now, Logger: discard()}, "app", &fakeTarget{name: "a"}, fast(Options{Fall: 100}), nil)
	ev := func(r Result) Result {
		r.Sent, r.Received = []byte("GET"), []byte("HTTP/1.1")
		r.Segments = []Segment{{Dir: DirSent, Len: 3}}
		return r
	}
	for i := range KeepResults + 5 {
		r := Result{OK: i%7 != 3, Reason: fmt.Sprint("check ", i), Status: 200, At: time.Unix(int64(i), 0)}
		c.observe(ev(r))
	}
	rs := c.Results()
	if len(rs) != KeepResults {
		t.Fatalf("got %d results, want %d", len(rs), KeepResults)
	}
	for i, r := range rs {
		n := i + 5
		if want := fmt.Sprint("check ", n); r.Reason != want || r.At.Unix() != int64(n) || r.Status != 200 {
			t.Errorf("result %d: got %q at %d status %d, want %q at %d status 200", i, r.Reason, r.At.Unix(), r.Status, want, n)
		}
		hasEvidence := r.Sent != nil && r.Received != nil && len(r.Segments) == 1
		if want := !r.OK || i == len(rs)-1; hasEvidence != want {
			t.Errorf("result %d (ok %t): got evidence %t, want %t", i, r.OK, hasEvidence, want)
		}
	}
	if last, _ := c.Last(); last.Reason != rs[len(rs)-1].Reason || last.Sent == nil {
		t.Errorf("got last %+v, want the newest result with its evidence", last)
	}
}

// The scheduler runs probes on workers, never more than there are probes
// in flight: ten servers that hang hold ten workers, not more.
func TestSchedulerWorkersBounded(t *testing.T) {
	hang := serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	before := runtime.NumGoroutine()
	var specs []Spec
	for i := range 10 {
		specs = append(specs, Spec{Pool: "app", Target: &fakeTarget{name: fmt.Sprint(i), addr: hang},
			Options: fast(Options{Type: TypeHTTP, Timeout: 50 * time.Millisecond})})
	}
	g := startGroup(t, Config{}, specs...)
	eventually(t, "every server checked twice", func() bool {
		for _, c := range g.Checkers() {
			if len(c.Results()) < 2 {
				return false
			}
		}
		return true
	})
	// The serve helper adds a goroutine per hanging connection: at most 10.
	// The group: the scheduler and at most one worker per server.
	if n, most := runtime.NumGoroutine()-before, 10+1+10; n > most {
		t.Errorf("got %d more goroutines, want at most %d", n, most)
	}
	for _, c := range g.Checkers() {
		if r, _ := c.Last(); r.OK || !strings.HasPrefix(r.Reason, "timeout after 50ms") {
			t.Errorf("server %s: got %q, want a timeout", c.Name(), r.Reason)
		}
	}
}
