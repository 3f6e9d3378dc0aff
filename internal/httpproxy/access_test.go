package httpproxy_test

import (
	"net/http"
	"net/netip"
	"regexp"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

func TestAccessRules(t *testing.T) {
	addr, seen := sawHeaders(t)
	rules := []httpproxy.AccessRule{
		{Allow: false, Path: regexp.MustCompile(`^/admin`), Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
		{Allow: false, Methods: []string{"DELETE"}},
		{Allow: false, HeaderName: "User-Agent", HeaderValue: regexp.MustCompile(`(?i)sqlmap`)},
		{Allow: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{Allow: false},
	}
	f := startProxy(t, fixtureOpts{access: rules}, addr)
	for _, tc := range []struct {
		method, path, ua string
		want             int
	}{
		{"GET", "/", "", 200},
		{"GET", "/admin/users", "", 403},
		{"GET", "/administrator?x=1", "", 403},
		{"GET", "/x?/admin", "", 200}, // the query is not the path
		{"DELETE", "/item", "", 403},
		{"PUT", "/item", "", 200},
		{"GET", "/", "sqlmap/1.7", 403},
		{"GET", "/", "Mozilla/5.0", 200},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+f.addr+tc.path, nil)
		if tc.ua != "" {
			req.Header.Set("User-Agent", tc.ua)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (UA %q): %d, want %d", tc.method, tc.path, tc.ua, resp.StatusCode, tc.want)
		}
		if tc.want == 200 {
			<-seen
		}
	}
	select {
	case h := <-seen:
		t.Fatalf("a denied request reached the server: %v", h)
	default:
	}
	// Nothing matches but the last rule for an address outside 127/8: the
	// catch-all deny. (Simulated by a rule list without the allow.)
	f2 := startProxy(t, fixtureOpts{access: []httpproxy.AccessRule{{Allow: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, {Allow: false}}}, addr)
	resp, err := http.Get("http://" + f2.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("client outside the allowed prefix: %d, want 403", resp.StatusCode)
	}
}
