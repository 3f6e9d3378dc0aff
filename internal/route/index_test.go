package route

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// scan is Match without the index: the definition the index must keep.
func (t *Table) scan(host, path []byte, header func(string) []byte) (int, int, bool) {
	host = hostOf(host)
	for i := range t.rules {
		if m := &t.rules[i]; m.matches(host, path, header) {
			return m.target, i, true
		}
	}
	return 0, -1, false
}

// TestIndexAgreesWithScan: on random tables (exact and wildcard hosts, IP
// literals, exact paths, prefixes of several lengths, headers, defaults,
// duplicates) and random requests, the indexed Match picks the same rule as
// trying the rules in order.
func TestIndexAgreesWithScan(t *testing.T) {
	hosts := []string{"", "", "a.example.com", "*.example.com", "example.com", "*.b.example.com", "x.b.example.com", "192.0.2.1", "::1", "shop.test"}
	paths := []string{"", "", "/", "/api", "/api/", "/api/v1/", "/login", "/s"}
	reqHosts := []string{"a.example.com", "A.Example.COM:8080", "example.com.", "x.b.example.com", "y.b.example.com", "b.example.com", "192.0.2.1:80", "[::1]:443", "shop.test", "other.org", "", "com"}
	reqPaths := []string{"/", "/api", "/api/", "/api/v1/items", "/login", "/s", "/sx", "/other", ""}
	rng := rand.New(rand.NewPCG(1, 2))
	for table := 0; table < 200; table++ {
		var rules []Rule
		for i := range indexFrom + rng.IntN(40) {
			r := Rule{Host: hosts[rng.IntN(len(hosts))], Target: i}
			p := paths[rng.IntN(len(paths))]
			if rng.IntN(2) == 0 {
				r.PathPrefix = p
			} else {
				r.Path = p
			}
			if rng.IntN(5) == 0 {
				r.HeaderName, r.HeaderValue = "X-Tenant", fmt.Sprint(rng.IntN(2))
			}
			rules = append(rules, r)
		}
		tb, err := New(rules)
		if err != nil {
			t.Fatal(err)
		}
		if tb.idx == nil {
			t.Fatal("no index built")
		}
		for _, h := range reqHosts {
			for _, p := range reqPaths {
				for _, tenant := range []string{"0", "1", ""} {
					hdr := func(string) []byte {
						if tenant == "" {
							return nil
						}
						return []byte(tenant)
					}
					gt, gr, gok := tb.Match([]byte(h), []byte(p), hdr)
					wt, wr, wok := tb.scan([]byte(h), []byte(p), hdr)
					if gt != wt || gr != wr || gok != wok {
						t.Fatalf("table %d, request %q %q tenant %q: index gives rule %d (target %d, %v), scan gives rule %d (target %d, %v)\nrules: %+v",
							table, h, p, tenant, gr, gt, gok, wr, wt, wok, rules)
					}
				}
			}
		}
	}
}

// TestIndexMatchAllocatesNothing: the indexed path allocates nothing either.
func TestIndexMatchAllocatesNothing(t *testing.T) {
	var rules []Rule
	for i := range 100 {
		rules = append(rules, Rule{Host: fmt.Sprintf("app%d.example.com", i), Target: i}, Rule{Host: fmt.Sprintf("*.t%d.example.com", i), PathPrefix: "/api/", Target: i})
	}
	tb, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	host, path := []byte("www.T99.example.com:8080"), []byte("/api/x")
	if _, r, ok := tb.Match(host, path, nil); !ok || r != 199 {
		t.Fatalf("Match = rule %d, %v; want 199", r, ok)
	}
	if n := testing.AllocsPerRun(100, func() { tb.Match(host, path, nil) }); n != 0 {
		t.Fatalf("%v allocations per indexed Match", n)
	}
}
