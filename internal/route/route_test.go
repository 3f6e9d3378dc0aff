package route_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/route"
)

// headers returns a header callback over canonical names.
func headers(kv ...string) func(string) []byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return func(name string) []byte { return m[name] }
}

func mustNew(t testing.TB, rules ...route.Rule) *route.Table {
	t.Helper()
	tb, err := route.New(rules)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

func TestHost(t *testing.T) {
	for _, tc := range []struct {
		rule, host string
		want       bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "EXAMPLE.Com", true},
		{"Example.COM", "example.com", true},
		{"example.com", "example.com:8080", true},
		{"example.com", "example.com.", true},
		{"example.com.", "example.com", true},
		{"example.com", "Example.Com.:443", true},
		{"example.com", "www.example.com", false},
		{"example.com", "example.co", false},
		{"example.com", "example.com.evil", false},
		{"example.com", "xexample.com", false},
		{"example.com", "", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "A.B.Example.COM:8443", true},
		{"*.example.com", "a.example.com.", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "aexample.com", false},
		{"*.example.com", "a.example.org", false},
		{"192.0.2.1", "192.0.2.1:80", true},
		{"192.0.2.1", "192.0.2.10", false},
		{"[::1]", "[::1]:8080", true},
		{"::1", "[::1]", true},
		{"::1", "::1", true},
		{"[2001:DB8::1]", "[2001:db8::1]:443", true},
		{"2001:db8::1", "[2001:DB8::1]", true},
		{"::1", "[::1", false},
		{"::1", "[::2]:80", false},
		{"::1", "1", false},
	} {
		t.Run(tc.rule+"/"+tc.host, func(t *testing.T) {
			tb := mustNew(t, route.Rule{Host: tc.rule, Target: 7})
			target, rule, ok := tb.Match([]byte(tc.host), []byte("/"), nil)
			if ok != tc.want {
				t.Fatalf("Match(%q) with host %q: got ok=%v, want %v", tc.host, tc.rule, ok, tc.want)
			}
			if ok && (target != 7 || rule != 0) {
				t.Fatalf("got target %d rule %d, want 7, 0", target, rule)
			}
		})
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		rule route.Rule
		path string
		want bool
	}{
		{route.Rule{Path: "/login"}, "/login", true},
		{route.Rule{Path: "/login"}, "/login/", false},
		{route.Rule{Path: "/login"}, "/Login", false},
		{route.Rule{Path: "/login"}, "/log", false},
		{route.Rule{PathPrefix: "/api/"}, "/api/users", true},
		{route.Rule{PathPrefix: "/api/"}, "/api/", true},
		{route.Rule{PathPrefix: "/api/"}, "/api", false},
		{route.Rule{PathPrefix: "/api/"}, "/API/users", false},
		{route.Rule{PathPrefix: "/"}, "/anything", true},
		{route.Rule{PathPrefix: "/"}, "", false},
	} {
		t.Run(fmt.Sprintf("%+v/%s", tc.rule, tc.path), func(t *testing.T) {
			_, _, ok := mustNew(t, tc.rule).Match([]byte("h"), []byte(tc.path), nil)
			if ok != tc.want {
				t.Fatalf("path %q: got ok=%v, want %v", tc.path, ok, tc.want)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tb := mustNew(t, route.Rule{HeaderName: "x-canary", HeaderValue: "on", Target: 3})
	var asked []string
	for _, tc := range []struct {
		header func(string) []byte
		want   bool
	}{
		{headers("X-Canary", "on"), true},
		{headers("X-Canary", "On"), false}, // values compare exactly
		{headers("X-Canary", "on "), false},
		{headers("X-Canary", ""), false},
		{headers("X-Other", "on"), false},
		{nil, false},
		{func(name string) []byte { asked = append(asked, name); return []byte("on") }, true},
	} {
		if _, _, ok := tb.Match([]byte("h"), []byte("/"), tc.header); ok != tc.want {
			t.Errorf("got ok=%v, want %v", ok, tc.want)
		}
	}
	if len(asked) != 1 || asked[0] != "X-Canary" {
		t.Errorf("callback asked for %q, want the canonical [X-Canary]", asked)
	}
}

func TestFirstMatchWins(t *testing.T) {
	tb := mustNew(t,
		route.Rule{Host: "api.example.com", PathPrefix: "/v2/", Target: 2},
		route.Rule{Host: "api.example.com", Target: 1},
		route.Rule{Host: "*.example.com", HeaderName: "X-Beta", HeaderValue: "1", Target: 4},
		route.Rule{Host: "*.example.com", Target: 3},
		route.Rule{PathPrefix: "/static/", Target: 5},
		route.Rule{Target: 0}, // default
	)
	for _, tc := range []struct {
		host, path string
		header     func(string) []byte
		target     int
		rule       int
	}{
		{"api.example.com", "/v2/users", nil, 2, 0},
		{"API.example.com:443", "/v1/users", nil, 1, 1},
		{"www.example.com", "/", headers("X-Beta", "1"), 4, 2},
		{"www.example.com", "/static/a.css", nil, 3, 3},
		{"other.org", "/static/a.css", nil, 5, 4},
		{"other.org", "/", nil, 0, 5},
	} {
		target, rule, ok := tb.Match([]byte(tc.host), []byte(tc.path), tc.header)
		if !ok || target != tc.target || rule != tc.rule {
			t.Errorf("Match(%q, %q): got %d, %d, %v; want %d, %d, true", tc.host, tc.path, target, rule, ok, tc.target, tc.rule)
		}
	}
	if _, rule, ok := mustNew(t).Match([]byte("a"), []byte("/"), nil); ok || rule != -1 {
		t.Errorf("empty table: got rule %d ok %v, want -1 false", rule, ok)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		rule  route.Rule
		field string
	}{
		{route.Rule{Host: "example.com:80"}, "host"},
		{route.Rule{Host: "[::1]:80"}, "host"},
		{route.Rule{Host: "[example.com]"}, "host"},
		{route.Rule{Host: "a.*.example.com"}, "host"},
		{route.Rule{Host: "*"}, "host"},
		{route.Rule{Host: "*."}, "host"},
		{route.Rule{Host: "a..b"}, "host"},
		{route.Rule{Host: "exa mple.com"}, "host"},
		{route.Rule{Path: "/a", PathPrefix: "/a"}, "path"},
		{route.Rule{Path: "a"}, "path"},
		{route.Rule{PathPrefix: "api/"}, "path"},
		{route.Rule{HeaderValue: "1"}, "header_value"},
		{route.Rule{HeaderName: "X-A"}, "header_name"},
		{route.Rule{HeaderName: "X A", HeaderValue: "1"}, "header_name"},
		{route.Rule{Target: -1}, "target"},
	} {
		t.Run(fmt.Sprintf("%+v", tc.rule), func(t *testing.T) {
			_, err := route.New([]route.Rule{{}, tc.rule})
			if !errors.Is(err, route.ErrInvalidRule) {
				t.Fatalf("got %v, want ErrInvalidRule", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "rule 1: "+tc.field) {
				t.Fatalf("got %q, want it to name rule 1 and field %s", msg, tc.field)
			}
		})
	}
	// Every mistake is reported at once.
	_, err := route.New([]route.Rule{{Host: "a:1"}, {}, {Path: "x", Target: -2}})
	if msg := err.Error(); strings.Count(msg, "\n") != 2 {
		t.Errorf("got %q, want three errors", msg)
	}
}

func TestMatchAllocs(t *testing.T) {
	tb := benchTable(t)
	hdr := headers("X-Tenant", "t99")
	host, path := []byte("Svc99.Example.com:8443"), []byte("/api/99/items")
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, ok := tb.Match(host, path, hdr); !ok {
			panic("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Match: %v allocations, want 0", allocs)
	}
}

// benchTable has 100 rules; the last specific one needs host, path and header.
func benchTable(t testing.TB) *route.Table {
	var rules []route.Rule
	for i := range 99 {
		switch i % 3 {
		case 0:
			rules = append(rules, route.Rule{Host: fmt.Sprintf("svc%d.example.com", i), Target: i})
		case 1:
			rules = append(rules, route.Rule{Host: fmt.Sprintf("*.t%d.example.com", i), PathPrefix: "/x/", Target: i})
		case 2:
			rules = append(rules, route.Rule{PathPrefix: fmt.Sprintf("/api/%d/", i), HeaderName: "x-tenant", HeaderValue: fmt.Sprint(i), Target: i})
		}
	}
	rules = append(rules, route.Rule{Host: "svc99.example.com", PathPrefix: "/api/99/", HeaderName: "x-tenant", HeaderValue: "t99", Target: 99})
	return mustNew(t, rules...)
}

func BenchmarkMatch100Rules(b *testing.B) {
	tb := benchTable(b)
	hdr := headers("X-Tenant", "t99")
	for _, tc := range []struct{ name, host, path string }{
		{"first", "svc0.example.com", "/"},
		{"last", "Svc99.Example.com:8443", "/api/99/items"},
		{"none", "nomatch.org", "/"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			host, path := []byte(tc.host), []byte(tc.path)
			b.ReportAllocs()
			for b.Loop() {
				tb.Match(host, path, hdr)
			}
		})
	}
}

// FuzzMatchHost checks Match against a plain string implementation of the
// host rules, and that no input makes it panic.
func FuzzMatchHost(f *testing.F) {
	for _, s := range []string{"example.com", "A.example.com.:80", "[::1]:8080", "[::1", "::1", ":", "[]", ".", "a.:", ""} {
		f.Add(s, "/p")
	}
	rules := []string{"example.com", "*.example.com", "::1", "192.0.2.1"}
	tables := make([]*route.Table, len(rules))
	for i, r := range rules {
		tables[i] = mustNew(f, route.Rule{Host: r})
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		h := referenceHost(host)
		for i, r := range rules {
			want := h == r || strings.HasPrefix(r, "*.") && len(h) > len(r)-1 && strings.HasSuffix(h, r[1:])
			if _, _, got := tables[i].Match([]byte(host), []byte(path), nil); got != want {
				t.Errorf("host %q, rule %q: got %v, want %v", host, r, got, want)
			}
		}
	})
}

// referenceHost is hostOf the slow way.
func referenceHost(h string) string {
	b := []byte(h)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	h = string(b)
	if rest, ok := strings.CutPrefix(h, "["); ok {
		if inner, _, ok := strings.Cut(rest, "]"); ok {
			return inner
		}
		return h
	}
	if strings.Count(h, ":") == 1 {
		h, _, _ = strings.Cut(h, ":")
	}
	return strings.TrimSuffix(h, ".")
}
