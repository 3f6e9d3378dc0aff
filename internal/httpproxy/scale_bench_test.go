package httpproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/internal/route"
)

// farm is the size of a configured farm: pools of servers each.
type farm struct{ pools, servers int }

var farms = []farm{{1, 2}, {100, 10}}

// scaleConfig is a listener's config for a farm whose servers all live at
// backend: pool i has round robin over its servers and one route (an exact
// host, a wildcard host with a path prefix, or a path prefix, in turn),
// tried in pool order, with a default route to pool 0 last. It is built the
// way the composition root builds one: a route name, CORS and access slot per
// rule, an upstream connection pool per server.
func scaleConfig(tb testing.TB, f farm, backend string) *httpproxy.Config {
	tb.Helper()
	cfg := &httpproxy.Config{
		Listener:     "web",
		ClientHeader: 2 * time.Second, ClientIdle: 5 * time.Second, ClientBody: 5 * time.Second, TunnelIdle: 5 * time.Second,
		MaxHeaderBytes: 32 << 10,
	}
	var rules []route.Rule
	for p := range f.pools {
		name := fmt.Sprintf("pool%d", p)
		servers := make([]*pool.Server, f.servers)
		cands := make([]balance.Candidate, f.servers)
		for s := range servers {
			servers[s] = pool.NewServer(fmt.Sprintf("%s-s%d", name, s), backend, 1)
			cands[s] = servers[s]
		}
		picker, err := balance.New(balance.RoundRobin, cands)
		if err != nil {
			tb.Fatal(err)
		}
		t := &httpproxy.Target{Pool: pool.New(name, balance.RoundRobin, servers), Picker: picker,
			ConnectTimeout: time.Second, ResponseTimeout: 5 * time.Second}
		for _, s := range servers {
			up := httpproxy.NewUpstream(s, httpproxy.UpstreamOptions{MaxIdle: 16, IdleTimeout: time.Minute})
			tb.Cleanup(up.Close)
			t.Upstreams = append(t.Upstreams, up)
		}
		cfg.Targets = append(cfg.Targets, t)
		switch p % 3 {
		case 0:
			rules = append(rules, route.Rule{Host: fmt.Sprintf("app%d.example.com", p), Target: p})
		case 1:
			rules = append(rules, route.Rule{Host: fmt.Sprintf("*.t%d.example.com", p), PathPrefix: "/api/", Target: p})
		case 2:
			rules = append(rules, route.Rule{PathPrefix: fmt.Sprintf("/svc%d/", p), Target: p})
		}
	}
	rules = append(rules, route.Rule{Target: 0})
	table, err := route.New(rules)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Routes = table
	for i := range rules {
		cfg.RouteNames = append(cfg.RouteNames, fmt.Sprintf("#%d", i))
	}
	cfg.CORS = make([]*httpproxy.CORS, len(rules))
	cfg.RouteAccess = make([][]httpproxy.AccessRule, len(rules))
	return cfg
}

// scaleRequest is a keep-alive GET that pool p's route matches.
func scaleRequest(p int) []byte {
	host, path := "www.example.com", fmt.Sprintf("/svc%d/items?id=1", p)
	switch p % 3 {
	case 0:
		host, path = fmt.Sprintf("app%d.example.com", p), "/items?id=1"
	case 1:
		host, path = fmt.Sprintf("www.t%d.example.com", p), "/api/items?id=1"
	}
	return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n", path, host)
}

// scaleClient sends req on one keep-alive connection to addr and reads the
// 100-byte answer of fixedBackend, allocating nothing once warm.
type scaleClient struct {
	c    net.Conn
	br   *bufio.Reader
	body []byte
}

func dialScale(tb testing.TB, addr string) *scaleClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &scaleClient{c: c, br: bufio.NewReaderSize(c, 4096), body: make([]byte, 100)}
}

func (sc *scaleClient) roundTrip(req []byte) error {
	if _, err := sc.c.Write(req); err != nil {
		return err
	}
	line, err := sc.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[9:12]) != "200" {
		return fmt.Errorf("got status line %q, want 200", line)
	}
	for len(line) > 2 {
		if line, err = sc.br.ReadSlice('\n'); err != nil {
			return err
		}
	}
	_, err = io.ReadFull(sc.br, sc.body)
	return err
}

// startScale runs the proxy with farm f's config in front of fixedBackend.
func startScale(tb testing.TB, f farm) string {
	tb.Helper()
	backend := fixedBackend(tb)
	fx := startProxy(tb, fixtureOpts{noAccessLog: true}, backend)
	fx.handler.Swap(scaleConfig(tb, f, backend))
	return fx.addr
}

// BenchmarkForwardScale is one keep-alive request through the whole path
// (parse, route, pick, forward, relay) as the farm grows from 1 pool of 2
// servers to 100 pools of 1,000 servers, matching the first route and the
// last specific one. Requests go one at a time over one connection, so the
// time is mostly loopback round trips: compare sizes, not absolute numbers.
// cpu-ns/op is the CPU time of the whole process (client, proxy and server)
// per request, steadier than ns/op when other work shares the machine.
func BenchmarkForwardScale(b *testing.B) {
	for _, f := range farms {
		addr := startScale(b, f)
		for _, tc := range []struct {
			name string
			pool int
		}{{"first", 0}, {"last", f.pools - 1}} {
			b.Run(fmt.Sprintf("pools=%d,servers=%d/%s", f.pools, f.pools*f.servers, tc.name), func(b *testing.B) {
				sc := dialScale(b, addr)
				req := scaleRequest(tc.pool)
				for range 2 * f.servers { // warm every server's upstream connection
					if err := sc.roundTrip(req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				cpu0 := processCPU(b)
				for b.Loop() {
					if err := sc.roundTrip(req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// processCPU is the user and system time this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestForwardingAllocatesNothingAtScale: with 100 pools and 1,000 servers
// configured, a request matching the last route still allocates nothing.
func TestForwardingAllocatesNothingAtScale(t *testing.T) {
	f := farm{100, 10}
	sc := dialScale(t, startScale(t, f))
	req := scaleRequest(f.pools - 1)
	one := func() {
		if err := sc.roundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // warm up buffers and upstream connections
		one()
	}
	if n := testing.AllocsPerRun(500, one); n != 0 {
		t.Fatalf("%v allocations per forwarded request, want 0", n)
	}
}
