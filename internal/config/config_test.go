package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestContract loads the configuration from the design brief (both
// snippets) and checks every field that was written, and the defaults of
// those that were not.
func TestContract(t *testing.T) {
	c, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.File != "testdata/good.yaml" {
		t.Errorf("File: got %q, want testdata/good.yaml", c.File)
	}
	if c.Admin.Listen != "127.0.0.1:9090" || c.Admin.TokenFile != "" || len(c.Admin.Hosts) != 0 {
		t.Errorf("Admin: got %+v, want listen 127.0.0.1:9090 only", c.Admin)
	}
	if got, want := c.Log, (Log{Level: "info", Format: "text", Access: true}); got != want {
		t.Errorf("Log: got %+v, want %+v", got, want)
	}
	if c.ShutdownTimeout != 30*time.Second {
		t.Errorf("ShutdownTimeout: got %v, want 30s", c.ShutdownTimeout)
	}
	if len(c.Listeners) != 2 {
		t.Fatalf("got %d listeners, want 2", len(c.Listeners))
	}
	web := c.Listeners[0]
	if web.Name != "web" || web.Listen != "127.0.0.1:8080" || web.Protocol != "http" || web.Pool != "" || web.TLS != nil {
		t.Errorf("listener web: got %+v", web)
	}
	wantRoutes := []Route{
		{PathPrefix: "/api/", Pool: "api"},
		{Host: "*.example.com", Header: &HeaderMatch{Name: "X-Canary", Value: "1"}, Pool: "canary"},
		{Pool: "app"},
	}
	if !reflect.DeepEqual(web.Routes, wantRoutes) {
		t.Errorf("web routes: got %+v, want %+v", web.Routes, wantRoutes)
	}
	wantTimeouts := ListenerTimeouts{ClientHeader: 10 * time.Second, ClientIdle: time.Minute, ClientBody: time.Minute, TunnelIdle: time.Hour}
	if web.Timeouts != wantTimeouts {
		t.Errorf("web timeouts: got %+v, want %+v", web.Timeouts, wantTimeouts)
	}
	if want := (ListenerLimits{MaxHeaderBytes: 32 << 10, MaxBody: 0, MaxConns: 10000}); web.Limits != want {
		t.Errorf("web limits: got %+v, want %+v", web.Limits, want)
	}
	db := c.Listeners[1]
	if db.Name != "db" || db.Listen != "127.0.0.1:5433" || db.Protocol != "tcp" || db.Pool != "pg" || len(db.Routes) != 0 {
		t.Errorf("listener db: got %+v", db)
	}

	var names []string
	for _, p := range c.Pools {
		names = append(names, p.Name+"/"+p.Balance)
	}
	if want := []string{"app/round_robin", "api/least_conn", "canary/p2c", "pg/least_conn"}; !reflect.DeepEqual(names, want) {
		t.Errorf("pools: got %v, want %v", names, want)
	}
	app := c.Pool("app")
	wantServers := []Server{
		{Name: "a", Address: "127.0.0.1:9001", Weight: 1},
		{Name: "b", Address: "127.0.0.1:9002", Weight: 3},
	}
	if !reflect.DeepEqual(app.Servers, wantServers) {
		t.Errorf("app servers: got %+v, want %+v", app.Servers, wantServers)
	}
	if app.Retries != 2 || app.MaxIdle != 512 || app.HashHeader != "" {
		t.Errorf("app: got retries %d max_idle %d hash_header %q, want 2 512 \"\"", app.Retries, app.MaxIdle, app.HashHeader)
	}
	if want := (PoolTimeouts{Connect: 3 * time.Second, Response: time.Minute, Idle: 90 * time.Second}); app.Timeouts != want {
		t.Errorf("app timeouts: got %+v, want %+v", app.Timeouts, want)
	}
	checkHTTPKeepalive(t, app.Keepalive)
	checkScriptKeepalive(t, c.Pool("pg").Keepalive)

	api := c.Pool("api").Keepalive
	if api.Type != "tcp" || api.Interval != 5*time.Second || api.DownInterval != 5*time.Second ||
		api.Timeout != 2*time.Second || api.Rise != 2 || api.Fall != 3 || api.Method != "" || api.Passive != nil {
		t.Errorf("default keepalive: got %+v", api)
	}
	if c.Pool("nope") != nil {
		t.Error("Pool(nope): got a pool, want nil")
	}
}

func checkHTTPKeepalive(t *testing.T, k Keepalive) {
	t.Helper()
	if k.Type != "http" || k.Method != "GET" || k.Path != "/isrunning.cfm" || k.Host != "www.example.com" {
		t.Errorf("keepalive request: got %s %s %s host %s", k.Type, k.Method, k.Path, k.Host)
	}
	if !reflect.DeepEqual(k.ExpectStatus, []int{200}) || !k.Hash || k.HashFleet || k.SendProxy || !k.Reuse || k.ReuseMax != 20 {
		t.Errorf("keepalive expectations: got %+v", k)
	}
	if len(k.HashMaskRe) != 1 || k.HashMask[0] != `\d{4}-\d\d-\d\d[ T][\d:]+` {
		t.Fatalf("hash_mask: got %q / %v", k.HashMask, k.HashMaskRe)
	}
	if got := k.HashMaskRe[0].ReplaceAllString("at 2024-01-02 10:11:12 ok", "#"); got != "at # ok" {
		t.Errorf("hash_mask regexp: got %q, want %q", got, "at # ok")
	}
	if k.BodyMatchRe == nil || !k.BodyMatchRe.MatchString("Successfully Running") ||
		k.BodyRejectRe == nil || !k.BodyRejectRe.MatchString("404 Object Not Found") {
		t.Errorf("body regexps: got %v / %v", k.BodyMatchRe, k.BodyRejectRe)
	}
	if k.Interval != 5*time.Second || k.DownInterval != 2*time.Second || k.Timeout != 2*time.Second || k.Rise != 2 || k.Fall != 3 {
		t.Errorf("keepalive timing: got %v %v %v %d %d", k.Interval, k.DownInterval, k.Timeout, k.Rise, k.Fall)
	}
	if want := (&Passive{Fall: 5, Within: 10 * time.Second}); !reflect.DeepEqual(k.Passive, want) {
		t.Errorf("passive: got %+v, want %+v", k.Passive, want)
	}
}

func checkScriptKeepalive(t *testing.T, k Keepalive) {
	t.Helper()
	if k.Type != "script" || k.ScriptName != "" || len(k.Script) != 6 {
		t.Fatalf("script keepalive: got %+v", k)
	}
	s := k.Script
	if s[0].Expect != "^220 " || s[0].ExpectRe == nil || !s[0].ExpectRe.MatchString("220 mail ready") {
		t.Errorf("step 0: got %+v", s[0])
	}
	if s[1].Send != "HELO fulcrum\r\n" || s[1].ExpectRe != nil {
		t.Errorf("step 1: got %+v", s[1])
	}
	if s[3].Reject != "error" || s[3].RejectRe == nil {
		t.Errorf("step 3: got %+v", s[3])
	}
	if !s[4].TLS || s[5].Send != "QUIT\r\n" {
		t.Errorf("steps 4, 5: got %+v %+v", s[4], s[5])
	}
}

// base is a minimal valid configuration that tests append to.
const base = `listeners:
  - {name: web, listen: 127.0.0.1:8080, protocol: http, pool: app}
pools:
  - name: app
    servers:
      - {name: a, address: 127.0.0.1:9001}
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func parseErr(t *testing.T, src string) string {
	t.Helper()
	_, err := Parse("test.yaml", []byte(src))
	if err == nil {
		t.Fatal("Parse succeeded, want an error")
	}
	return err.Error()
}

func TestPoolOnHTTPListenerIsDefaultRoute(t *testing.T) {
	c := mustParse(t, base)
	if want := []Route{{Pool: "app"}}; !reflect.DeepEqual(c.Listeners[0].Routes, want) {
		t.Errorf("routes: got %+v, want %+v", c.Listeners[0].Routes, want)
	}
}

func TestDependentDefaults(t *testing.T) {
	c := mustParse(t, base+`      - {name: b, address: "[::1]:9002", max_conns: 10}
      - {name: c, address: backend.internal:9003, max_conns: 10, max_queue: 0}
    keepalive: {type: http, interval: 10s}
`)
	p := c.Pools[0]
	if got := []int{p.Servers[0].MaxQueue, p.Servers[1].MaxQueue, p.Servers[2].MaxQueue}; !reflect.DeepEqual(got, []int{0, 100, 0}) {
		t.Errorf("max_queue: got %v, want [0 100 0]", got)
	}
	k := p.Keepalive
	if k.Method != "HEAD" || k.Path != "/" || !reflect.DeepEqual(k.ExpectStatus, []int{200}) || k.DownInterval != 10*time.Second ||
		!k.Reuse || k.ReuseMax != 10 {
		t.Errorf("http keepalive defaults: got %+v", k)
	}
}

func TestWrittenZeroIsNotDefaulted(t *testing.T) {
	c := mustParse(t, base+`    retries: 0
    max_idle: 0
`)
	if c.Pools[0].Retries != 0 || c.Pools[0].MaxIdle != 0 {
		t.Errorf("got retries %d max_idle %d, want 0 0", c.Pools[0].Retries, c.Pools[0].MaxIdle)
	}
}

func TestRouteHostLowered(t *testing.T) {
	c := mustParse(t, `listeners:
  - name: web
    listen: :8080
    protocol: http
    routes: [{host: "*.Example.COM", pool: app}]
pools: [{name: app, servers: [{name: a, address: 10.0.0.1:80}]}]
`)
	if got := c.Listeners[0].Routes[0].Host; got != "*.example.com" {
		t.Errorf("host: got %q, want *.example.com", got)
	}
}

func TestAliases(t *testing.T) {
	c := mustParse(t, `listeners:
  - {name: web, listen: 127.0.0.1:8080, protocol: http, pool: app}
pools:
  - name: app
    servers: [{name: a, address: 127.0.0.1:9001}]
    keepalive: &check {type: http, path: /health}
  - name: app2
    servers: [{name: a, address: 127.0.0.1:9002}]
    keepalive: *check
`)
	if got := c.Pools[1].Keepalive.Path; got != "/health" {
		t.Errorf("aliased keepalive path: got %q, want /health", got)
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("x: &s {name: a, address: 127.0.0.1:1}\n")
	b.WriteString("y: &l [" + strings.Repeat("*s,", 1000) + "*s]\n")
	b.WriteString("pools: [" + strings.Repeat("{name: p, servers: *l},", 1000) + "{name: p, servers: *l}]\n")
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "configuration too large") {
		t.Errorf("got %v, want a too-large error", firstLine(err))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to reject", d)
	}
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func TestDocumentErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"empty", "", "test.yaml: configuration is empty"},
		{"comments only", "# nothing\n", "test.yaml: configuration is empty"},
		{"two documents", base + "---\nlog: {}\n", "test.yaml:7:1: only one YAML document is allowed"},
		{"not a mapping", "- a\n", "test.yaml:1:1: expected a mapping, got a list"},
		{"merge key", "base: &b {}\n" + base + "<<: *b\n", `test.yaml:1:1: unknown field "base"` + "\n" + "test.yaml:8:1: merge keys (<<) are not supported"},
		{"tab indent", "listeners:\n\t- a\n", "test.yaml:2: invalid YAML: found character that cannot start any token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseErr(t, tt.src); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse("f.yaml", []byte(base+"    retries: 11\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	want := Error{File: "f.yaml", Line: 7, Col: 14, Path: "pools[0].retries", Msg: "must be 0..10, got 11"}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if got := e.Error(); got != "f.yaml:7:14: pools[0].retries: must be 0..10, got 11" {
		t.Errorf("rendered: got %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestValueChecks(t *testing.T) {
	tests := []struct{ name, extra, want string }{
		{"ipv6 server", `      - {name: b, address: "[::1]:9002"}`, ""},
		{"hostname server", `      - {name: b, address: "db-1.internal:5432"}`, ""},
		{"bad ipv4", `      - {name: b, address: "10.0.0.300:80"}`, `invalid IPv4 address "10.0.0.300"`},
		{"port zero", `      - {name: b, address: "10.0.0.3:0"}`, `port must be a number 1..65535, got "0"`},
		{"named port", `      - {name: b, address: "10.0.0.3:http"}`, `port must be a number 1..65535, got "http"`},
		{"no host", `      - {name: b, address: ":80"}`, `missing host in ":80"`},
		{"bad name", `      - {name: "b c", address: "10.0.0.3:80"}`, `must contain only letters`},
		{"weight 1001", `      - {name: b, address: "10.0.0.3:80", weight: 1001}`, "must be 1..1000, got 1001"},
		{"bool as string", `      - {name: true, address: "10.0.0.3:80"}`, "expected a string, got boolean true"},
		{"float as int", `      - {name: b, address: "10.0.0.3:80", weight: 1.5}`, "expected an integer, got number 1.5"},
		{"null name", `      - {name: , address: "10.0.0.3:80"}`, "expected a string, got nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(base+tt.extra+"\n"))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
