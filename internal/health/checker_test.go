package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRiseFall(t *testing.T) {
	var good atomic.Bool
	addr := serve(t, func(c net.Conn) {
		readRequest(c)
		if good.Load() {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		} else {
			c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
		}
	})
	var mu sync.Mutex
	var changes []Change
	tgt := &fakeTarget{name: "a", addr: addr}
	g := startGroup(t, Config{OnChange: func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() }},
		Spec{Pool: "app", Target: tgt, Options: fast(Options{Type: TypeHTTP, Rise: 2, Fall: 3})})
	c := g.Checker("app", "a")
	eventually(t, "down", func() bool { return c.State() == Down })
	if Health(tgt.h.Load()) != Down {
		t.Errorf("got target health %s, want down", Health(tgt.h.Load()))
	}
	good.Store(true)
	eventually(t, "up", func() bool { return c.State() == Up })

	want := []struct {
		from, to Health
		reason   string
	}{
		{Up, Dying, "status 503, want one of [200] (1 of 3 failures)"},
		{Dying, Down, "status 503, want one of [200] (3 of 3 failures)"},
		{Down, Up, "2 passes: status 200"},
	}
	h := c.History()
	if len(h) != len(want) {
		t.Fatalf("got history %+v, want %d transitions", h, len(want))
	}
	for i, w := range want {
		if h[i].From != w.from || h[i].To != w.to || h[i].Reason != w.reason {
			t.Errorf("transition %d: got %s->%s %q, want %s->%s %q", i, h[i].From, h[i].To, h[i].Reason, w.from, w.to, w.reason)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != len(want) || changes[0].Pool != "app" || changes[0].Server != "a" {
		t.Errorf("got %d OnChange calls (%+v), want one per transition", len(changes), changes)
	}
}

func TestDyingRecoversWithOnePass(t *testing.T) {
	c := newChecker(&Config{Now: time.Now, Logger: discard()}, "app", &fakeTarget{name: "a"}, fast(Options{Rise: 3, Fall: 3}), nil)
	c.observe(Result{Reason: "boom"})
	if c.State() != Dying {
		t.Fatalf("got %s, want dying", c.State())
	}
	c.observe(Result{OK: true, Reason: "fine"})
	if c.State() != Up {
		t.Fatalf("got %s, want up after one pass while dying", c.State())
	}
}

func TestAtMostOneProbeInFlight(t *testing.T) {
	var active, peak, served atomic.Int32
	addr := serve(t, func(c net.Conn) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		readRequest(c)
		time.Sleep(30 * time.Millisecond) // slower than the interval
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		served.Add(1)
	})
	c := checkOne(t, addr, Options{Type: TypeHTTP, Interval: 5 * time.Millisecond}, 4)
	if p := peak.Load(); p != 1 {
		t.Errorf("got %d probes in flight at once, want 1", p)
	}
	if c.State() != Up {
		t.Errorf("got %s, want up", c.State())
	}
}

func TestHashFleet(t *testing.T) {
	pages := make([]atomic.Value, 3)
	var specs []Spec
	var downs sync.Map
	for i := range pages {
		pages[i].Store("version A")
		addr := serve(t, func(c net.Conn) {
			readRequest(c)
			body := pages[i].Load().(string)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		})
		specs = append(specs, Spec{Pool: "app", Target: &fakeTarget{name: fmt.Sprint("s", i), addr: addr},
			Options: fast(Options{Type: TypeHTTP, Method: "GET", Hash: true, HashFleet: true, Fall: 3})})
	}
	g := startGroup(t, Config{OnChange: func(c Change) {
		if c.To == Down {
			downs.Store(c.Server, c.Reason)
		}
	}}, specs...)
	cs := g.Checkers()
	hashOf := func(s string) string { return bodyHash([]byte(s), Options{}) }
	allRef := func(h string) func() bool {
		return func() bool {
			for _, c := range cs {
				if c.ReferenceHash() != h {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "hash A learned", allRef(hashOf("version A")))

	// A deploy: every server changes together and stays up.
	for i := range pages {
		pages[i].Store("version B")
	}
	eventually(t, "hash B adopted", allRef(hashOf("version B")))
	downs.Range(func(k, v any) bool { t.Errorf("server %v went down during a fleet change: %v", k, v); return true })
	adopted := false
	for _, c := range cs {
		for _, r := range c.Results() {
			adopted = adopted || (r.HashChanged && strings.HasPrefix(r.Reason, "hash_changed: "))
		}
	}
	if !adopted {
		t.Error("got no hash_changed result, want the fleet change reported")
	}

	// One server diverges and goes down alone.
	pages[1].Store("defaced")
	eventually(t, "s1 down", func() bool { return cs[1].State() == Down })
	last, _ := cs[1].Last()
	if want := "hash diverged from the pool: got "; !strings.HasPrefix(last.Reason, want) {
		t.Errorf("got reason %q, want %q...", last.Reason, want)
	}
	for _, i := range []int{0, 2} {
		if cs[i].State() == Down {
			t.Errorf("got s%d down, want only the diverging server down", i)
		}
	}
}

func TestPassive(t *testing.T) {
	tgt := &fakeTarget{name: "a", addr: "127.0.0.1:1"}
	g := startGroup(t, Config{}, Spec{Pool: "app", Target: tgt,
		Options: fast(Options{Interval: time.Hour, Passive: Passive{Fall: 3, Within: time.Minute}})})
	c := g.Checker("app", "a")
	c.ReportPassive(true)
	c.ReportPassive(false)
	c.ReportPassive(true)
	if c.State() != Up {
		t.Fatalf("got %s after 2 failures, want up", c.State())
	}
	c.ReportPassive(true)
	if c.State() != Down || Health(tgt.h.Load()) != Down {
		t.Fatalf("got %s, want down after 3 failures", c.State())
	}
	h := c.History()
	if want := "passive: 3 failures on live traffic within 1m0s"; len(h) != 1 || h[0].Reason != want {
		t.Errorf("got history %+v, want one transition %q", h, want)
	}
}

func TestUpdateKeepsUnchangedCheckers(t *testing.T) {
	addr := serve(t, reply("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"))
	o := fast(Options{Type: TypeHTTP})
	g := startGroup(t, Config{}, Spec{Pool: "app", Target: &fakeTarget{name: "a", addr: addr}, Options: o})
	c := g.Checker("app", "a")
	eventually(t, "down", func() bool { return c.State() == Down })

	// Same server, same options, new Target: the checker and its state stay.
	t2 := &fakeTarget{name: "a", addr: addr}
	if err := g.Update([]Spec{{Pool: "app", Target: t2, Options: o}}); err != nil {
		t.Fatal(err)
	}
	if g.Checker("app", "a") != c || Health(t2.h.Load()) != Down {
		t.Errorf("got a new checker or target health %s, want the old checker and down", Health(t2.h.Load()))
	}

	// Changed options: a new checker that inherits down and the history.
	o2 := o
	o2.Path = "/other"
	t3 := &fakeTarget{name: "a", addr: addr}
	if err := g.Update([]Spec{{Pool: "app", Target: t3, Options: o2}}); err != nil {
		t.Fatal(err)
	}
	c2 := g.Checker("app", "a")
	if c2 == c || c2.State() != Down || len(c2.History()) == 0 || Health(t3.h.Load()) != Down {
		t.Errorf("got state %s, want a new checker that is still down with history", c2.State())
	}

	// Removed: no checker left; invalid options reject the whole update.
	if err := g.Update(nil); err != nil || g.Checker("app", "a") != nil {
		t.Errorf("got %v, want the checker removed", err)
	}
	bad := o
	bad.Method = "POST"
	if err := g.Update([]Spec{{Pool: "app", Target: t3, Options: bad}}); err == nil || !strings.Contains(err.Error(), "keepalive.method") {
		t.Errorf("got %v, want an error naming keepalive.method", err)
	}
}

func TestGroupStopLeavesNoGoroutines(t *testing.T) {
	addr := serve(t, reply("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	slow := serve(t, func(c net.Conn) { c.Read(make([]byte, 1)) })
	before := runtime.NumGoroutine()
	g := NewGroup(Config{})
	var specs []Spec
	for i := range 20 {
		a := addr
		if i%2 == 0 {
			a = slow
		}
		specs = append(specs, Spec{Pool: "app", Target: &fakeTarget{name: fmt.Sprint(i), addr: a}, Options: fast(Options{Type: TypeHTTP})})
	}
	if err := g.Update(specs); err != nil {
		t.Fatal(err)
	}
	g.Start(context.Background())
	eventually(t, "checks", func() bool { _, ok := g.Checker("app", "1").Last(); return ok })
	g.Stop()
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	g.Stop() // idempotent
}

func TestTranscript(t *testing.T) {
	addr := serve(t, coldFusion)
	o := Options{Type: TypeHTTP, Method: "GET", BodyReject: re("404 Object Not Found")}.WithDefaults()
	r := Probe(context.Background(), nil, addr, o)
	var b bytes.Buffer
	if err := WriteTranscript(&b, addr, o, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"probe http GET /", "> segment 1: sent", `>   GET / HTTP/1.1\r\n`, "< segment 2: received",
		`<   HTTP/1.1 200 OK\r\n`, "note: LF-only line ends", "verdict: PASS: status 200",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, addr, path, host string
		typ                  Type
		err                  bool
	}{
		{"http://www.example.com/isrunning.cfm?x=1", "www.example.com:80", "/isrunning.cfm?x=1", "www.example.com", TypeHTTP, false},
		{"http://10.0.0.5:8080", "10.0.0.5:8080", "/", "10.0.0.5:8080", TypeHTTP, false},
		{"10.0.0.5:25", "10.0.0.5:25", "", "", TypeTCP, false},
		{"ftp://x", "", "", "", "", true},
		{"nohost", "", "", "", "", true},
	}
	for _, tt := range tests {
		addr, o, err := ParseTarget(tt.in)
		if (err != nil) != tt.err || addr != tt.addr || o.Path != tt.path || o.Host != tt.host || o.Type != tt.typ {
			t.Errorf("ParseTarget(%q) = %q %+v %v, want %q path %q host %q type %q err %v", tt.in, addr, o, err, tt.addr, tt.path, tt.host, tt.typ, tt.err)
		}
	}
}

func TestValidate(t *testing.T) {
	o := Options{Type: "icmp", Method: "PUT", Hash: true, Rise: -1, Script: []Step{{Send: "x", TLS: true}}}.WithDefaults()
	o.Type = "icmp"
	err := o.Validate()
	for _, want := range []string{"keepalive.type", "keepalive.method", "keepalive.hash", "keepalive.rise"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to name %s", err, want)
		}
	}
	if err := (Options{Type: TypeScript, ScriptName: "smtp"}).WithDefaults().Validate(); err != nil {
		t.Errorf("got %v for a built-in script, want none", err)
	}
	if err := (Options{Type: TypeScript, ScriptName: "nntp"}).WithDefaults().Validate(); err == nil {
		t.Error("got no error for an unknown built-in script")
	}
}

func TestResultJSON(t *testing.T) {
	r := Result{OK: false, Duration: 1500 * time.Microsecond, Reason: "status 404, want one of [200]", Status: 404,
		Sent: []byte("HEAD / HTTP/1.1\r\n\r\n"), Received: []byte("HTTP/1.1 404 Not Found\r\n\r\n"),
		Segments: []Segment{{Dir: DirReceived, Len: 26, At: 2 * time.Millisecond}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ok":false`, `"duration_ms":1.5`, `"received":"HTTP/1.1 404 Not Found\r\n\r\n"`, `"dir":"received"`, `"at_ms":2`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("got %s, want it to contain %s", b, want)
		}
	}
	tb, _ := json.Marshal(Transition{From: Up, To: Down, Reason: "x"})
	if !strings.Contains(string(tb), `"from":"up","to":"down"`) {
		t.Errorf("got %s, want states by name", tb)
	}
}
