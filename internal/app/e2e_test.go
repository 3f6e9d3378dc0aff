package app_test

// End-to-end proofs of issue 2 through a running app: every balancing
// algorithm and content routing, with real loopback backends. The fixtures
// here (farm, poolConf, appText, client helpers) are shared by the other
// e2e_*_test.go files.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// farm is a set of backends, each answering every request with its own name.
// A request for /hold blocks until release (or the client goes away), so a
// test can keep requests in flight on whichever server the balancer chose.
type farm struct {
	names   []string
	addrs   []string
	held    map[string]*atomic.Int64 // requests now blocked in /hold, by name
	release chan struct{}
	once    sync.Once
}

func newFarm(t *testing.T, names ...string) *farm {
	t.Helper()
	f := &farm{names: names, held: map[string]*atomic.Int64{}, release: make(chan struct{})}
	for _, name := range names {
		held := new(atomic.Int64)
		f.held[name] = held
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				held.Add(1)
				defer held.Add(-1)
				select {
				case <-f.release:
				case <-r.Context().Done():
				}
			}
			w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
			w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
			io.WriteString(w, name)
		}))
		// Cleanups run last in, first out: release before the server waits
		// for its requests.
		t.Cleanup(srv.Close)
		t.Cleanup(f.releaseAll)
		f.addrs = append(f.addrs, srv.Listener.Addr().String())
	}
	return f
}

// releaseAll ends every /hold request, now and later.
func (f *farm) releaseAll() { f.once.Do(func() { close(f.release) }) }

// servers lists the farm as pool servers with the given weights (missing
// weights are 1).
func (f *farm) servers(weights ...int) []server {
	out := make([]server, len(f.names))
	for i := range f.names {
		out[i] = server{name: f.names[i], addr: f.addrs[i], weight: 1}
		if i < len(weights) {
			out[i].weight = weights[i]
		}
	}
	return out
}

type server struct {
	name, addr string
	weight     int
}

// poolConf renders one entry of pools.
type poolConf struct {
	name, balance string
	keepalive     string // default {type: none}: no probes unless a test wants them
	extra         string // more keys, one per line, each indented four spaces
	servers       []server
}

func (p poolConf) yaml() string {
	ka := p.keepalive
	if ka == "" {
		ka = "{type: none}"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    balance: %s\n    keepalive: %s\n%s    servers:\n", p.name, p.balance, ka, p.extra)
	for _, s := range p.servers {
		fmt.Fprintf(&b, "      - {name: %s, address: %q, weight: %d}\n", s.name, s.addr, max(s.weight, 1))
	}
	return b.String()
}

// httpListener renders one http listener; each route is a YAML flow mapping.
func httpListener(name, listen string, routes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    listen: %q\n    protocol: http\n    routes:\n", name, listen)
	for _, r := range routes {
		fmt.Fprintf(&b, "      - %s\n", r)
	}
	return b.String()
}

// appText is a whole config: the admin API, the listeners (already rendered)
// and the pools.
func appText(admin, listeners string, pools ...poolConf) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %q}\nlog: {access: false}\nshutdown_timeout: 5s\nlisteners:\n%spools:\n", admin, listeners)
	for _, p := range pools {
		b.WriteString(p.yaml())
	}
	return b.String()
}

// onePool starts an app with one http listener "web" routing everything to
// pool p, and returns the fixture.
func onePool(t *testing.T, p poolConf) *fixture {
	t.Helper()
	web, admin := freePort(t), freePort(t)
	p.name = "app"
	return start(t, appText(admin, httpListener("web", web, "{pool: app}"), p))
}

// newClient returns a client with its own keep-alive connections.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// fetch sends a GET with the given headers ("Host" sets the request host)
// and returns the status and body.
func fetch(t *testing.T, c *http.Client, url string, header map[string]string) (int, string) {
	t.Helper()
	code, got, err := tryFetch(c, url, header)
	if err != nil {
		t.Fatal(err)
	}
	return code, got
}

// tryFetch is fetch for goroutines other than the test's.
func tryFetch(c *http.Client, url string, header map[string]string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	return resp.StatusCode, string(b), nil
}

// who sends one GET and returns the name of the server that answered; a
// status other than 200 fails the test.
func who(t *testing.T, c *http.Client, url string, header map[string]string) string {
	t.Helper()
	code, got := fetch(t, c, url, header)
	if code != 200 {
		t.Fatalf("GET %s %v: status %d (%q), want 200", url, header, code, got)
	}
	return got
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBalanceRoundRobinRotatesExactly(t *testing.T) {
	f := newFarm(t, "a", "b", "c")
	app := onePool(t, poolConf{balance: "round_robin", servers: f.servers()})
	c := newClient(t)
	url := "http://" + app.web + "/"
	first := who(t, c, url, nil)
	k := strings.Index("abc", first)
	for i := 1; i < 30; i++ {
		want := f.names[(k+i)%3]
		if got := who(t, c, url, nil); got != want {
			t.Fatalf("request %d: got %q, want %q (rotation from %q)", i, got, want, first)
		}
	}
}

func TestBalanceWeightedFollowsWeights(t *testing.T) {
	f := newFarm(t, "a", "b", "c")
	app := onePool(t, poolConf{balance: "weighted", servers: f.servers(1, 2, 3)})
	const total, workers = 3000, 4
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		c := newClient(t)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for range total / workers {
				code, got, err := tryFetch(c, "http://"+app.web+"/", nil)
				if err != nil || code != 200 {
					t.Errorf("got %d %q (%v), want 200", code, got, err)
					return
				}
				local[got]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, name := range f.names {
		want := float64(total) * float64(i+1) / 6
		if got := float64(counts[name]); got < want*0.95 || got > want*1.05 {
			t.Errorf("server %s (weight %d): got %v requests, want %v ±5%% (all: %v)", name, i+1, got, want, counts)
		}
	}
}

// holdOne parks one /hold request on whichever server the balancer picks and
// returns that server's name once the request is inside it.
func holdOne(t *testing.T, f *farm, url string) string {
	t.Helper()
	go func() {
		resp, err := http.Get(url + "hold")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	var busy string
	eventually(t, 5*time.Second, "a held request to reach a server", func() bool {
		for name, n := range f.held {
			if n.Load() == 1 {
				busy = name
				return true
			}
		}
		return false
	})
	return busy
}

// TestBalanceLoadAware: least_conn and p2c send no new request to a server
// that is holding one while the others are idle, and still use the others.
func TestBalanceLoadAware(t *testing.T) {
	for _, alg := range []string{"least_conn", "p2c"} {
		t.Run(alg, func(t *testing.T) {
			f := newFarm(t, "a", "b", "c")
			defer f.releaseAll()
			app := onePool(t, poolConf{balance: alg, servers: f.servers()})
			url := "http://" + app.web + "/"
			c := newClient(t)
			// Idle pool: every server takes a share.
			idle := map[string]int{}
			for range 60 {
				idle[who(t, c, url, nil)]++
			}
			if len(idle) != 3 {
				t.Fatalf("idle pool: traffic went to %v, want all three servers", idle)
			}
			busy := holdOne(t, f, url)
			counts := map[string]int{}
			for range 60 {
				counts[who(t, c, url, nil)]++
			}
			if counts[busy] != 0 {
				t.Fatalf("busy server %s got %d of 60 new requests, want 0 (all: %v)", busy, counts[busy], counts)
			}
			if len(counts) != 2 {
				t.Fatalf("with %s busy, traffic went to %v, want both idle servers", busy, counts)
			}
		})
	}
}

func TestBalanceSourceHashIsStable(t *testing.T) {
	f := newFarm(t, "a", "b", "c")
	app := onePool(t, poolConf{balance: "source_hash", servers: f.servers()})
	// Every test client is 127.0.0.1: a new connection per request, and all
	// must land on the same server.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	counts := map[string]int{}
	for range 50 {
		counts[who(t, c, "http://"+app.web+"/", nil)]++
	}
	if len(counts) != 1 {
		t.Fatalf("one client address spread over %v, want one server", counts)
	}
}

func TestBalanceURIHash(t *testing.T) {
	f := newFarm(t, "a", "b", "c")
	app := onePool(t, poolConf{balance: "uri_hash", servers: f.servers()})
	c := newClient(t)
	assertHashed(t, 20, func(key int) string {
		return who(t, c, fmt.Sprintf("http://%s/item/%d?v=1", app.web, key), nil)
	})
}

func TestBalanceHeaderHash(t *testing.T) {
	f := newFarm(t, "a", "b", "c")
	app := onePool(t, poolConf{balance: "header_hash", extra: "    hash_header: X-User\n", servers: f.servers()})
	c := newClient(t)
	url := "http://" + app.web + "/"
	assertHashed(t, 20, func(key int) string {
		return who(t, c, url, map[string]string{"X-User": fmt.Sprintf("user-%d", key)})
	})
	// Without the header there is nothing to hash: requests spread.
	counts := map[string]int{}
	for range 30 {
		counts[who(t, c, url, nil)]++
	}
	if len(counts) < 2 {
		t.Fatalf("requests without X-User went to %v, want them spread", counts)
	}
}

// assertHashed asks for each of n keys three times: a key always gets the
// same server, and the keys use more than one server.
func assertHashed(t *testing.T, n int, ask func(key int) string) {
	t.Helper()
	used := map[string]int{}
	for key := range n {
		first := ask(key)
		for range 2 {
			if got := ask(key); got != first {
				t.Fatalf("key %d: went to %q, then %q; want one server", key, first, got)
			}
		}
		used[first]++
	}
	if len(used) < 2 {
		t.Fatalf("%d keys all on %v, want them spread over more than one server", n, used)
	}
}

func TestRouting(t *testing.T) {
	names := []string{"exact", "api", "never", "canary", "org", "wild", "app", "only"}
	f := newFarm(t, names...)
	pools := make([]poolConf, len(names))
	for i, n := range names {
		pools[i] = poolConf{name: n, balance: "round_robin", servers: []server{{name: n, addr: f.addrs[i]}}}
	}
	web, other, admin := freePort(t), freePort(t), freePort(t)
	listeners := httpListener("web", web,
		"{path: /exact, pool: exact}",
		"{path_prefix: /api/, pool: api}",
		"{path_prefix: /api/v2/, pool: never}", // shadowed: first match wins
		`{host: "*.example.com", header: {name: X-Canary, value: "1"}, pool: canary}`,
		"{host: www.example.org, pool: org}",
		`{host: "*.example.com", pool: wild}`,
		"{pool: app}",
	) + httpListener("other", other, "{path_prefix: /only/, pool: only}")
	fx := start(t, appText(admin, listeners, pools...))
	c := newClient(t)
	base := "http://" + fx.web
	for _, tc := range []struct {
		name   string
		path   string
		header map[string]string
		want   string
	}{
		{"exact path", "/exact", nil, "exact"},
		{"exact path ignores the query", "/exact?x=1", nil, "exact"},
		{"exact path is not a prefix", "/exact/more", nil, "app"},
		{"path prefix", "/api/users", nil, "api"},
		{"prefix needs its slash", "/api", nil, "app"},
		{"first match wins", "/api/v2/users", nil, "api"},
		{"wildcard host with canary header", "/", map[string]string{"Host": "shop.example.com", "X-Canary": "1"}, "canary"},
		{"canary header with another value", "/", map[string]string{"Host": "shop.example.com", "X-Canary": "0"}, "wild"},
		{"wildcard host, deeper name, any case", "/", map[string]string{"Host": "A.B.Example.COM:8080"}, "wild"},
		{"wildcard excludes the bare domain", "/", map[string]string{"Host": "example.com"}, "app"},
		{"exact host", "/", map[string]string{"Host": "www.example.org"}, "org"},
		{"exact host is not a suffix", "/", map[string]string{"Host": "x.www.example.org"}, "app"},
		{"canary header without the host", "/", map[string]string{"X-Canary": "1"}, "app"},
		{"default route", "/anything", nil, "app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := who(t, c, base+tc.path, tc.header); got != tc.want {
				t.Fatalf("GET %s %v: answered by %q, want %q", tc.path, tc.header, got, tc.want)
			}
		})
	}
	t.Run("no matching route is a 404 from fulcrum", func(t *testing.T) {
		otherURL := "http://" + fx.app.ListenerAddr("other").String()
		if got := who(t, c, otherURL+"/only/x", nil); got != "only" {
			t.Fatalf("GET /only/x: answered by %q, want %q", got, "only")
		}
		code, got := fetch(t, c, otherURL+"/elsewhere", nil)
		if code != 404 || strings.Contains(got, "only") {
			t.Fatalf("GET /elsewhere: %d %q, want fulcrum's 404", code, got)
		}
	})
}
