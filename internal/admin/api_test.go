package admin_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

type serverView struct {
	Name     string              `json:"name"`
	Address  string              `json:"address"`
	Weight   int                 `json:"weight"`
	State    string              `json:"state"`
	Since    time.Time           `json:"since"`
	Active   int64               `json:"active"`
	Requests uint64              `json:"requests"`
	Failures uint64              `json:"failures"`
	Check    *admin.CheckSummary `json:"check"`
}

type poolView struct {
	Name    string       `json:"name"`
	Balance string       `json:"balance"`
	Servers []serverView `json:"servers"`
}

func TestListPools(t *testing.T) {
	h := newHarness(t, "")
	a := h.rt.server("app", "a")
	a.Acquire()
	a.Acquire()
	a.Release(false)
	h.rt.last["app/a"] = admin.CheckSummary{OK: true, At: checkAt, DurationMS: 1.5, Reason: ""}

	r := h.do("GET", "/api/v1/pools", "")
	mustStatus(t, r, http.StatusOK)
	var got struct{ Pools []poolView }
	r.decode(t, &got)

	if len(got.Pools) != 2 || got.Pools[0].Name != "app" || got.Pools[1].Name != "api" {
		t.Fatalf("pools = %+v, want app then api", got.Pools)
	}
	app := got.Pools[0]
	if app.Balance != "round_robin" || len(app.Servers) != 2 {
		t.Fatalf("app = %+v, want round_robin with 2 servers", app)
	}
	sa, sb := app.Servers[0], app.Servers[1]
	if sa.Name != "a" || sa.Address != "127.0.0.1:9001" || sa.Weight != 1 || sa.State != "up" ||
		sa.Active != 1 || sa.Requests != 1 || sa.Failures != 0 {
		t.Errorf("server a = %+v", sa)
	}
	if sa.Since.IsZero() || time.Since(sa.Since) > time.Minute {
		t.Errorf("server a since = %v, want about now", sa.Since)
	}
	if sa.Check == nil || !sa.Check.OK || !sa.Check.At.Equal(checkAt) || sa.Check.DurationMS != 1.5 {
		t.Errorf("server a check = %+v, want ok at %v in 1.5ms", sa.Check, checkAt)
	}
	if sb.Weight != 3 {
		t.Errorf("server b weight = %d, want 3", sb.Weight)
	}
	if want := `{"name":"b","address":"127.0.0.1:9002","weight":3,"state":"up","since":"`; !strings.Contains(string(r.body), want) {
		t.Errorf("body lacks %s (field names and order): %s", want, r.body)
	}
	if strings.Count(string(r.body), `"check"`) != 1 {
		t.Errorf("body has %d check objects, want 1 (omitted when none): %s", strings.Count(string(r.body), `"check"`), r.body)
	}
}

func TestGetPoolAndServer(t *testing.T) {
	h := newHarness(t, "")
	r := h.do("GET", "/api/v1/pools/api", "")
	mustStatus(t, r, http.StatusOK)
	var p poolView
	r.decode(t, &p)
	if p.Name != "api" || p.Balance != "least_conn" || len(p.Servers) != 1 || p.Servers[0].Address != "[::1]:9011" {
		t.Errorf("pool api = %+v", p)
	}

	r = h.do("GET", "/api/v1/pools/app/servers/b", "")
	mustStatus(t, r, http.StatusOK)
	var s serverView
	r.decode(t, &s)
	if s.Name != "b" || s.Weight != 3 {
		t.Errorf("server b = %+v", s)
	}
}

func TestNotFound(t *testing.T) {
	h := newHarness(t, "")
	for _, tc := range []struct{ method, path, wantMsg string }{
		{"GET", "/api/v1/pools/nope", `no pool "nope"`},
		{"GET", "/api/v1/pools/app/servers/zz", `no server "zz" in pool "app"`},
		{"POST", "/api/v1/pools/nope/servers/a/drain", `no pool "nope"`},
		{"POST", "/api/v1/pools/app/servers/zz/disable", `no server "zz" in pool "app"`},
		{"POST", "/api/v1/pools/app/servers/zz/weight", `no server "zz" in pool "app"`},
		{"POST", "/api/v1/pools/app/servers/zz/rehash", `no server "zz" in pool "app"`},
		{"GET", "/api/v1/pools/app/servers/zz/checks", `no server "zz" in pool "app"`},
		{"GET", "/api/v1/pools/app/servers/a/checks", `no checks for server "a" in pool "app"`},
		{"GET", "/api/v1/nothing", "no such route"},
		{"POST", "/api/v1/pools/app/servers/a/explode", "no such route"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := h.do(tc.method, tc.path, "")
			mustStatus(t, r, http.StatusNotFound)
			if msg, _ := r.apiError(t); msg != tc.wantMsg {
				t.Errorf("error = %q, want %q", msg, tc.wantMsg)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t, "")
	for _, tc := range []struct{ method, path, wantAllow string }{
		{"POST", "/api/v1/pools", "GET, HEAD"},
		{"DELETE", "/api/v1/pools/app", "GET, HEAD"},
		{"GET", "/api/v1/reload", "POST"},
		{"GET", "/api/v1/pools/app/servers/a/drain", "POST"},
		{"PUT", "/metrics", "GET, HEAD"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := h.do(tc.method, tc.path, "")
			mustStatus(t, r, http.StatusMethodNotAllowed)
			if got := r.header.Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tc.wantAllow)
			}
			if msg, _ := r.apiError(t); msg != "method "+tc.method+" not allowed" {
				t.Errorf("error = %q", msg)
			}
		})
	}
}

func TestAdminActions(t *testing.T) {
	h := newHarness(t, "")
	a := h.rt.server("app", "a")
	for _, tc := range []struct {
		action string
		want   pool.State
	}{
		{"drain", pool.StateDraining},
		{"disable", pool.StateDisabled},
		{"enable", pool.StateUp},
		{"enable", pool.StateUp}, // idempotent
	} {
		r := h.do("POST", "/api/v1/pools/app/servers/a/"+tc.action, "")
		mustStatus(t, r, http.StatusOK)
		var s serverView
		r.decode(t, &s)
		if s.State != string(tc.want) || a.State() != tc.want {
			t.Errorf("after %s: response state %q, server state %q, want %q", tc.action, s.State, a.State(), tc.want)
		}
	}
	if n := strings.Count(h.log.String(), "admin: server enabled"); n != 1 {
		t.Errorf("logged %d enables, want 1 (only changes are logged)", n)
	}
	if !strings.Contains(h.log.String(), "admin: server drained") {
		t.Errorf("drain not logged: %s", h.log.String())
	}
}

func TestSetWeight(t *testing.T) {
	h := newHarness(t, "")
	b := h.rt.server("app", "b")
	r := h.do("POST", "/api/v1/pools/app/servers/b/weight", `{"weight": 7}`)
	mustStatus(t, r, http.StatusOK)
	var s serverView
	r.decode(t, &s)
	if s.Weight != 7 || b.Weight() != 7 {
		t.Fatalf("weight: response %d, server %d, want 7", s.Weight, b.Weight())
	}

	for _, tc := range []struct{ name, body, wantMsg string }{
		{"zero", `{"weight": 0}`, "weight must be an integer from 1 to 1000"},
		{"too big", `{"weight": 1001}`, "weight must be an integer from 1 to 1000"},
		{"missing", `{}`, "weight must be an integer from 1 to 1000"},
		{"fraction", `{"weight": 1.5}`, "bad request body"},
		{"string", `{"weight": "5"}`, "bad request body"},
		{"unknown field", `{"weight": 5, "wieght": 5}`, "bad request body"},
		{"not json", `weight=5`, "bad request body"},
		{"empty", ``, "bad request body"},
		{"trailing data", `{"weight": 5} {"weight": 6}`, "bad request body"},
		{"too large", `{"weight": 5, "x": "` + strings.Repeat("a", 8<<10) + `"}`, "bad request body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/api/v1/pools/app/servers/b/weight", tc.body)
			mustStatus(t, r, http.StatusBadRequest)
			if msg, _ := r.apiError(t); msg != tc.wantMsg {
				t.Errorf("error = %q, want %q", msg, tc.wantMsg)
			}
			if b.Weight() != 7 {
				t.Errorf("weight changed to %d by a refused request", b.Weight())
			}
		})
	}
}

func TestRehash(t *testing.T) {
	h := newHarness(t, "")
	r := h.do("POST", "/api/v1/pools/app/servers/a/rehash", "")
	mustStatus(t, r, http.StatusOK)
	if !slices.Equal(h.rt.rehashed, []string{"app/a"}) {
		t.Errorf("rehashed = %v, want [app/a]", h.rt.rehashed)
	}

	h.rt.rehashErr = errors.New("pool app has no hash keepalive")
	r = h.do("POST", "/api/v1/pools/app/servers/a/rehash", "")
	mustStatus(t, r, http.StatusConflict)
	msg, details := r.apiError(t)
	if msg != "rehash refused" || !slices.Equal(details, []string{"pool app has no hash keepalive"}) {
		t.Errorf("error = %q %q", msg, details)
	}

	h.rt.rehashErr = fmt.Errorf("rehashing: %w", &admin.APIError{Status: http.StatusServiceUnavailable, Msg: "keepalives stopping"})
	r = h.do("POST", "/api/v1/pools/app/servers/a/rehash", "")
	mustStatus(t, r, http.StatusServiceUnavailable)
	if msg, _ := r.apiError(t); msg != "keepalives stopping" {
		t.Errorf("error = %q, want the runtime's APIError", msg)
	}
}

func TestChecks(t *testing.T) {
	h := newHarness(t, "")
	h.rt.checks["app/b"] = map[string]any{"checks": []map[string]any{{"ok": false, "reason": "status 500"}}}
	r := h.do("GET", "/api/v1/pools/app/servers/b/checks", "")
	mustStatus(t, r, http.StatusOK)
	if got, want := strings.TrimSpace(string(r.body)), `{"checks":[{"ok":false,"reason":"status 500"}]}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}

	h.rt.checks["app/b"] = make(chan int) // not marshallable: a runtime bug
	r = h.do("GET", "/api/v1/pools/app/servers/b/checks", "")
	mustStatus(t, r, http.StatusInternalServerError)
	if msg, _ := r.apiError(t); msg != "encoding response" {
		t.Errorf("error = %q", msg)
	}
}

func TestReload(t *testing.T) {
	h := newHarness(t, "")
	r := h.do("POST", "/api/v1/reload", "")
	mustStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != `{"status":"reloaded"}` {
		t.Errorf("body = %s", got)
	}

	h.rt.reloadErr = errors.Join(
		errors.New("fulcrum.yaml:4:9: pools[0].balance: unknown algorithm \"roundrobin\""),
		errors.New("fulcrum.yaml:12:15: pools[1].servers[0].address: missing port"),
	)
	r = h.do("POST", "/api/v1/reload", "")
	mustStatus(t, r, http.StatusBadRequest)
	msg, details := r.apiError(t)
	want := []string{
		`fulcrum.yaml:4:9: pools[0].balance: unknown algorithm "roundrobin"`,
		"fulcrum.yaml:12:15: pools[1].servers[0].address: missing port",
	}
	if msg != "reload refused" || !slices.Equal(details, want) {
		t.Errorf("got %q %q, want %q %q", msg, details, "reload refused", want)
	}
}

func TestHealthzAndVersion(t *testing.T) {
	h := newHarness(t, "")
	r := h.do("GET", "/healthz", "")
	mustStatus(t, r, http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != `{"status":"ok"}` {
		t.Errorf("healthz body = %s", got)
	}
	r = h.do("HEAD", "/healthz", "")
	mustStatus(t, r, http.StatusOK)

	r = h.do("GET", "/api/v1/version", "")
	mustStatus(t, r, http.StatusOK)
	var v struct{ Version, Go string }
	r.decode(t, &v)
	if v.Version != "v1.2.3-test" || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("version = %+v", v)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

func TestNew(t *testing.T) {
	if _, err := admin.New(admin.Options{}); !errors.Is(err, admin.ErrNoRuntime) {
		t.Errorf("New without runtime: err = %v, want ErrNoRuntime", err)
	}
	if _, err := admin.New(admin.Options{Runtime: newFakeRuntime(), Token: " \n"}); err == nil {
		t.Error("New with a blank token: err = nil, want an error (not silently unauthenticated)")
	}
}

func TestRequireToken(t *testing.T) {
	for _, tc := range []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:9090", false},
		{"127.1.2.3:9090", false},
		{"[::1]:9090", false},
		{"::1", false},
		{"localhost:9090", false},
		{"LocalHost:9090", false},
		{"127.0.0.1", false},
		{"[::ffff:127.0.0.1]:9090", false},
		{":9090", true},
		{"0.0.0.0:9090", true},
		{"0.0.0.0", true},
		{"[::]:9090", true},
		{"[::]", true},
		{"10.0.0.5:9090", true},
		{"admin.example.com:9090", true},
		{"", true},
	} {
		if got := admin.RequireToken(tc.listen); got != tc.want {
			t.Errorf("RequireToken(%q) = %v, want %v", tc.listen, got, tc.want)
		}
	}
}
