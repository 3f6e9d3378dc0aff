package route_test

import (
	"fmt"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/route"
)

// scaleRules is the route table of a farm with pools pools: one rule per pool
// (an exact host, a wildcard host with a path prefix, or a path prefix, in
// turn) and a default route last. Pool i's rule is rule i.
func scaleRules(pools int) []route.Rule {
	var rules []route.Rule
	for i := range pools {
		switch i % 3 {
		case 0:
			rules = append(rules, route.Rule{Host: fmt.Sprintf("app%d.example.com", i), Target: i})
		case 1:
			rules = append(rules, route.Rule{Host: fmt.Sprintf("*.t%d.example.com", i), PathPrefix: "/api/", Target: i})
		case 2:
			rules = append(rules, route.Rule{PathPrefix: fmt.Sprintf("/svc%d/", i), Target: i})
		}
	}
	return append(rules, route.Rule{Target: 0})
}

// scaleRequest is a request that pool i's rule matches.
func scaleRequest(i int) (host, path string) {
	switch i % 3 {
	case 0:
		return fmt.Sprintf("App%d.Example.com:8080", i), "/items/1"
	case 1:
		return fmt.Sprintf("www.t%d.example.com", i), "/api/items/1"
	}
	return "www.example.com", fmt.Sprintf("/svc%d/items/1", i)
}

// BenchmarkMatchScale is the cost of routing as the farm grows from 1 pool to
// 100 (and 1,000 to show the slope): the first rule matching, the last
// specific one, and a request no specific rule matches (the default route,
// after every rule). Match scans rules in order, so the last two grow with
// the number of rules.
func BenchmarkMatchScale(b *testing.B) {
	for _, pools := range []int{1, 10, 100, 1000} {
		tb, err := route.New(scaleRules(pools))
		if err != nil {
			b.Fatal(err)
		}
		lastHost, lastPath := scaleRequest(pools - 1)
		firstHost, firstPath := scaleRequest(0)
		for _, tc := range []struct {
			name, host, path string
			rule             int
		}{
			{"first", firstHost, firstPath, 0},
			{"last", lastHost, lastPath, pools - 1},
			{"default", "other.org", "/", pools},
		} {
			b.Run(fmt.Sprintf("pools=%d/%s", pools, tc.name), func(b *testing.B) {
				host, path := []byte(tc.host), []byte(tc.path)
				if _, rule, _ := tb.Match(host, path, nil); rule != tc.rule {
					b.Fatalf("Match(%q, %q): got rule %d, want %d", tc.host, tc.path, rule, tc.rule)
				}
				b.ReportAllocs()
				for b.Loop() {
					tb.Match(host, path, nil)
				}
			})
		}
	}
}
