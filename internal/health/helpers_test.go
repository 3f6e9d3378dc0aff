package health

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs handle for every connection to a loopback listener until the
// test ends, and returns the listener's address.
func serve(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequest reads a request head and returns its request line.
func readRequest(c net.Conn) string {
	br := bufio.NewReader(c)
	first := ""
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return first
		}
		if first == "" {
			first = strings.TrimSpace(l)
		}
		if l == "\r\n" || l == "\n" {
			return first
		}
	}
}

// reply serves a fixed response to every request.
func reply(resp string) func(net.Conn) {
	return func(c net.Conn) {
		readRequest(c)
		c.Write([]byte(resp))
	}
}

type fakeTarget struct {
	name, addr string
	h          atomic.Uint32
}

func (f *fakeTarget) Name() string    { return f.name }
func (f *fakeTarget) Address() string { return f.addr }
func (f *fakeTarget) SetHealth(h Health) bool {
	return Health(f.h.Swap(uint32(h))) != h
}

var _ Target = (*fakeTarget)(nil)

// fast returns options for tests: short intervals, rise 1, fall 1.
func fast(o Options) Options {
	if o.Interval == 0 {
		o.Interval = 20 * time.Millisecond
	}
	if o.DownInterval == 0 {
		o.DownInterval = 20 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Rise == 0 {
		o.Rise = 1
	}
	if o.Fall == 0 {
		o.Fall = 1
	}
	return o.WithDefaults()
}

// startGroup runs a group over specs until the test ends.
func startGroup(t testing.TB, cfg Config, specs ...Spec) *Group {
	t.Helper()
	g := NewGroup(cfg)
	if err := g.Update(specs); err != nil {
		t.Fatal(err)
	}
	g.Start(context.Background())
	t.Cleanup(g.Stop)
	return g
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkOne runs a checker for one server until it has completed n checks
// and returns it.
func checkOne(t *testing.T, addr string, o Options, n int) *Checker {
	t.Helper()
	g := startGroup(t, Config{}, Spec{Pool: "app", Target: &fakeTarget{name: "a", addr: addr}, Options: fast(o)})
	c := g.Checker("app", "a")
	eventually(t, "checks to complete", func() bool { return len(c.Results()) >= n })
	return c
}

func re(s string) *regexp.Regexp { return regexp.MustCompile(s) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
