package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// TestLimitScopesSurviveReorder: route rates are kept by the route's
// match, not its position: a reload that swaps two limited routes keeps
// each client's state with its route. GET /api/v1/limits shows it.
func TestLimitScopesSurviveReorder(t *testing.T) {
	backend := named("app")
	defer backend.Close()
	web, admin := freePort(t), freePort(t)
	conf := func(first, second string) string {
		return fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - name: web
    listen: %s
    protocol: http
    routes:
      - {path_prefix: %s, pool: app, rate_limit: {requests: 2, per: 1h, burst: 1}}
      - {path_prefix: %s, pool: app, rate_limit: {requests: 2, per: 1h, burst: 1}}
pools:
  - name: app
    keepalive: {type: none}
    servers: [{name: a, address: %q}]
`, admin, web, first, second, backend.Listener.Addr().String())
	}
	f := start(t, conf("/login", "/api"))
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get("http://" + web + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, want := range []int{200, 200, 429} {
		if got := get("/login"); got != want {
			t.Fatalf("login request %d: status %d, want %d", i, got, want)
		}
	}
	var lim struct {
		Scopes []struct {
			Scope             string
			RetryAfterSeconds float64 `json:"retry_after_seconds"`
		}
	}
	if code := getJSON(t, "http://"+admin+"/api/v1/limits?listener=web&client=127.0.0.1", &lim); code != 200 {
		t.Fatalf("GET /api/v1/limits: %d", code)
	}
	if len(lim.Scopes) != 1 || lim.Scopes[0].Scope != "route path_prefix=/login" || lim.Scopes[0].RetryAfterSeconds <= 0 {
		t.Fatalf("limits: got %+v, want the login route waiting", lim.Scopes)
	}

	writeConfig(t, f.path, conf("/api", "/login"))
	if err := f.app.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := get("/login"); got != 429 {
		t.Errorf("login after the routes were swapped: %d, want 429 (its state kept)", got)
	}
	if got := get("/api"); got != 200 {
		t.Errorf("api after the routes were swapped: %d, want 200 (not the login route's state)", got)
	}

	for q, want := range map[string]int{"listener=nope&client=127.0.0.1": 404, "listener=web&client=x": 400} {
		if code := getJSON(t, "http://"+admin+"/api/v1/limits?"+q, nil); code != want {
			t.Errorf("GET /api/v1/limits?%s: %d, want %d", q, code, want)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}
