package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// adminDo sends method to the admin API and returns the status and body.
func adminDo(t *testing.T, method, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

type adminServer struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Weight   int    `json:"weight"`
	State    string `json:"state"`
	Active   int64  `json:"active"`
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
}

// serverState reads one server's state from the admin API.
func serverState(t *testing.T, admin, pool, name string) adminServer {
	t.Helper()
	code, b := adminDo(t, http.MethodGet, "http://"+admin+"/api/v1/pools/"+pool+"/servers/"+name)
	var s adminServer
	if code != 200 || json.Unmarshal(b, &s) != nil {
		t.Fatalf("GET server %s/%s: %d %s", pool, name, code, b)
	}
	return s
}

func TestAdminAPI(t *testing.T) {
	f := newFarm(t, "a", "b")
	fx := onePool(t, poolConf{balance: "weighted", servers: f.servers(1, 3)})
	admin, c := "http://"+fx.admin, newClient(t)
	for range 8 {
		who(t, c, "http://"+fx.web+"/", nil)
	}

	t.Run("healthz", func(t *testing.T) {
		if code, b := adminDo(t, http.MethodGet, admin+"/healthz"); code != 200 {
			t.Fatalf("GET /healthz: %d %s, want 200", code, b)
		}
	})

	t.Run("pools shape", func(t *testing.T) {
		// The counters are updated once a response is sent: wait for the
		// last request to be counted.
		eventually(t, 5*time.Second, "8 requests counted", func() bool {
			return serverState(t, fx.admin, "app", "a").Requests+serverState(t, fx.admin, "app", "b").Requests == 8
		})
		code, b := adminDo(t, http.MethodGet, admin+"/api/v1/pools")
		if code != 200 {
			t.Fatalf("GET /api/v1/pools: %d %s", code, b)
		}
		// Decode loosely first: every documented key must be there.
		var raw struct {
			Pools []map[string]json.RawMessage `json:"pools"`
		}
		if err := json.Unmarshal(b, &raw); err != nil || len(raw.Pools) != 1 {
			t.Fatalf("GET /api/v1/pools: %s (%v), want one pool", b, err)
		}
		for _, k := range []string{"name", "balance", "servers"} {
			if _, ok := raw.Pools[0][k]; !ok {
				t.Fatalf("pool has no %q: %s", k, b)
			}
		}
		var rawServers []map[string]json.RawMessage
		json.Unmarshal(raw.Pools[0]["servers"], &rawServers)
		for _, s := range rawServers {
			for _, k := range []string{"name", "address", "weight", "state", "active", "requests", "failures"} {
				if _, ok := s[k]; !ok {
					t.Fatalf("server has no %q: %s", k, b)
				}
			}
		}
		var got struct {
			Pools []struct {
				Name    string        `json:"name"`
				Balance string        `json:"balance"`
				Servers []adminServer `json:"servers"`
			} `json:"pools"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		p := got.Pools[0]
		want := []adminServer{
			{Name: "a", Address: f.addrs[0], Weight: 1, State: "up", Requests: 2},
			{Name: "b", Address: f.addrs[1], Weight: 3, State: "up", Requests: 6},
		}
		if p.Name != "app" || p.Balance != "weighted" || fmt.Sprint(p.Servers) != fmt.Sprint(want) {
			t.Fatalf("pool = %+v, want app, weighted, %+v", p, want)
		}
	})

	t.Run("drain, disable, enable", func(t *testing.T) {
		for _, step := range []struct {
			verb, state string
			gets        bool // server a still takes new requests
		}{
			{"drain", "draining", false},
			{"enable", "up", true},
			{"disable", "disabled", false},
			{"enable", "up", true},
		} {
			code, b := adminDo(t, http.MethodPost, admin+"/api/v1/pools/app/servers/a/"+step.verb)
			var s adminServer
			if code != 200 || json.Unmarshal(b, &s) != nil || s.State != step.state {
				t.Fatalf("POST %s: %d %s, want 200 and state %q", step.verb, code, b, step.state)
			}
			if got := serverState(t, fx.admin, "app", "a").State; got != step.state {
				t.Fatalf("after %s: state %q, want %q", step.verb, got, step.state)
			}
			counts := map[string]int{}
			for range 8 {
				counts[who(t, c, "http://"+fx.web+"/", nil)]++
			}
			if gets := counts["a"] > 0; gets != step.gets {
				t.Fatalf("after %s: traffic %v, want server a used: %v", step.verb, counts, step.gets)
			}
		}
	})

	t.Run("errors are JSON", func(t *testing.T) {
		code, b := adminDo(t, http.MethodPost, admin+"/api/v1/pools/app/servers/nope/drain")
		var e struct {
			Error string `json:"error"`
		}
		if code != 404 || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Fatalf("drain of an unknown server: %d %s, want 404 with {\"error\": ...}", code, b)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, b := adminDo(t, http.MethodGet, admin+"/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics: %d", code)
		}
		for _, want := range []string{
			`fulcrum_server_requests_total{pool="app",server="a"}`,
			`fulcrum_server_requests_total{pool="app",server="b"}`,
			`fulcrum_server_state{pool="app",server="a",state="up"} 1`,
			`fulcrum_server_latency_seconds_bucket{pool="app",server="b",le="0.005"}`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics has no %s", want)
			}
		}
	})
}

func TestKeepaliveTakesFailingServerOut(t *testing.T) {
	var sick atomic.Bool
	mk := func(name string, canFail bool) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				if canFail && sick.Load() {
					w.WriteHeader(http.StatusInternalServerError)
				}
				return
			}
			io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	fx := onePool(t, poolConf{
		balance:   "round_robin",
		keepalive: "{type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}",
		servers:   []server{{name: "a", addr: mk("a", true)}, {name: "b", addr: mk("b", false)}},
	})
	c, url := newClient(t), "http://"+fx.web+"/"
	// A probe timing out on a loaded machine takes a server out for one
	// interval (fall 1, timeout 100ms): poll rather than expect every
	// answer, and count a 503 as "not yet".
	answers := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			code, got, err := tryFetch(c, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if code != 200 {
				got = fmt.Sprint(code)
			}
			seen[got]++
		}
		return seen
	}
	eventually(t, 10*time.Second, "both servers to take traffic", func() bool {
		seen := answers(10)
		return seen["a"] > 0 && seen["b"] > 0
	})

	sick.Store(true)
	eventually(t, 10*time.Second, "traffic to leave the failing server", func() bool {
		return answers(6)["b"] == 6
	})
	if s := serverState(t, fx.admin, "app", "a"); s.State != "down" {
		t.Fatalf("failing server's state %q, want down", s.State)
	}
	code, b := adminDo(t, http.MethodGet, "http://"+fx.admin+"/api/v1/pools/app/servers/a/checks")
	var rec struct {
		Checks []struct {
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
			Status int    `json:"status"`
		} `json:"checks"`
	}
	if code != 200 || json.Unmarshal(b, &rec) != nil || len(rec.Checks) == 0 {
		t.Fatalf("GET checks: %d %s, want 200 with checks", code, b)
	}
	last := rec.Checks[len(rec.Checks)-1]
	if last.OK || last.Status != 500 || last.Reason == "" {
		t.Fatalf("last check %+v, want a failure with status 500 and a reason", last)
	}

	// Healthy again: back in rotation after rise (1) passing checks.
	sick.Store(false)
	eventually(t, 10*time.Second, "the recovered server to take traffic again", func() bool {
		return answers(4)["a"] > 0
	})
}
