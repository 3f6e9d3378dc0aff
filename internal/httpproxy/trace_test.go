package httpproxy_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

func TestTrace(t *testing.T) {
	table := persist.NewTable(persist.Options{Timeout: time.Minute, MaxEntries: 100})
	f := startProxy(t, fixtureOpts{
		trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		persist: &httpproxy.Persistence{Mode: httpproxy.PersistSourceIP, Table: table, Mask: persist.SourceMask{V4: 32, V6: 128}},
	}, sessionApps(t, 3)...)
	tr := f.handler.Trace(httpproxy.TraceQuery{Client: netip.MustParseAddr("192.0.2.7"), Method: "GET", Host: "a", Path: "/x"})
	if tr.Pool != "app" || tr.Server == "" || !strings.HasPrefix(tr.Why, "balanced by round_robin") || tr.Persistence != "source_ip" || tr.PersistEntry != "" {
		t.Fatalf("trace before pinning = %+v", tr)
	}
	if _, ok := table.Peek("192.0.2.7"); ok {
		t.Fatal("a trace created a persistence entry")
	}
	table.PinString("192.0.2.7", "s2")
	tr = f.handler.Trace(httpproxy.TraceQuery{Client: netip.MustParseAddr("192.0.2.7"), Method: "GET", Host: "a", Path: "/x"})
	if tr.Server != "s2" || tr.PersistEntry != "s2" || !strings.Contains(tr.Why, "pinned") {
		t.Fatalf("trace of a pinned client = %+v", tr)
	}
	f.target.Pool.Server("s2").SetHealth(pool.HealthDown)
	tr = f.handler.Trace(httpproxy.TraceQuery{Client: netip.MustParseAddr("192.0.2.7"), Method: "GET", Host: "a", Path: "/x"})
	if tr.Server == "s2" || !strings.Contains(tr.PersistEntry, "redispatch") {
		t.Fatalf("trace with the pinned server down = %+v", tr)
	}

	// A live request asking from a trusted address gets the explanation.
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/", nil)
	req.Header.Set("X-Fulcrum-Trace", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header.Get("X-Fulcrum-Trace")
	if !strings.Contains(h, "client=127.0.0.1 (peer)") || !strings.Contains(h, "pool=app") || !strings.Contains(h, "why=balanced by round_robin") {
		t.Fatalf("X-Fulcrum-Trace = %q", h)
	}
}

func TestTraceHeaderOnlyForTrusted(t *testing.T) {
	f := startProxy(t, fixtureOpts{}, sessionApps(t, 1)...)
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/", nil)
	req.Header.Set("X-Fulcrum-Trace", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("X-Fulcrum-Trace"); h != "" {
		t.Fatalf("untrusted client got a trace: %q", h)
	}
}
