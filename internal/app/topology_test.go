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

// TestDashboardDetail runs the dashboard's server detail against a real
// keepalive with a learned hash: after the page changes, the detail shows
// the reference body and the body that failed it; the snapshot lists the
// listener with its routes.
func TestDashboardDetail(t *testing.T) {
	var page atomic.Value
	page.Store("version one\n")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page.Load().(string))
	}))
	t.Cleanup(backend.Close)
	web, admin := freePort(t), freePort(t)
	f := start(t, fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - {name: web, listen: %s, protocol: http, routes: [{path_prefix: /api/, pool: app}, {pool: app}]}
pools:
  - name: app
    keepalive: {type: http, method: GET, path: /, hash: true, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}
    servers: [{name: a, address: %q}]
`, admin, web, backend.Listener.Addr().String()))

	getJSON := func(path string, v any) {
		t.Helper()
		resp, err := http.Get("http://" + f.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	var snap struct {
		Listeners []struct {
			Name, Address string
			Routes        []struct{ Rule, Pool string }
		}
	}
	getJSON("/api/v1/snapshot", &snap)
	if len(snap.Listeners) != 1 || snap.Listeners[0].Address != f.web || len(snap.Listeners[0].Routes) != 2 ||
		snap.Listeners[0].Routes[0].Rule != "path_prefix=/api/" || snap.Listeners[0].Routes[1].Rule != "*" {
		t.Fatalf("listeners = %+v", snap.Listeners)
	}

	type body struct{ Hash, Body, Reason string }
	var d struct {
		Reference, Failed *body
		Server            struct{ State string }
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: %+v", what, d)
			}
			getJSON("/api/v1/pools/app/servers/a/detail", &d)
		}
	}
	wait("the reference body", func() bool { return d.Reference != nil })
	page.Store("version two\n")
	wait("the failing body", func() bool { return d.Failed != nil && d.Server.State == "down" })
	if !strings.HasSuffix(d.Reference.Body, "version one\n") || !strings.HasSuffix(d.Failed.Body, "version two\n") ||
		!strings.Contains(d.Failed.Reason, "hash changed") {
		t.Errorf("reference %+v, failed %+v", d.Reference, d.Failed)
	}
}
