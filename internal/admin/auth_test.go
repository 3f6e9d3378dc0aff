package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

func TestAuth(t *testing.T) {
	const token = "s3cret-t0ken-value"
	h := newHarness(t, token)
	h.tok = "" // each case sets its own header
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no header", "GET", "/api/v1/pools", "", http.StatusUnauthorized},
		{"wrong token", "GET", "/api/v1/pools", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "GET", "/api/v1/pools", "Bearer " + token[:5], http.StatusUnauthorized},
		{"token plus more", "GET", "/api/v1/pools", "Bearer " + token + "x", http.StatusUnauthorized},
		{"basic scheme", "GET", "/api/v1/pools", "Basic " + token, http.StatusUnauthorized},
		{"bare token", "GET", "/api/v1/pools", token, http.StatusUnauthorized},
		{"right token", "GET", "/api/v1/pools", "Bearer " + token, http.StatusOK},
		{"lower-case scheme", "GET", "/api/v1/pools", "bearer " + token, http.StatusOK},
		{"metrics need it", "GET", "/metrics", "", http.StatusUnauthorized},
		{"metrics with it", "GET", "/metrics", "Bearer " + token, http.StatusOK},
		{"version needs it", "GET", "/api/v1/version", "", http.StatusUnauthorized},
		{"reload needs it", "POST", "/api/v1/reload", "Bearer wrong", http.StatusUnauthorized},
		{"drain needs it", "POST", "/api/v1/pools/app/servers/a/drain", "", http.StatusUnauthorized},
		{"unknown routes too", "GET", "/api/v1/secret", "", http.StatusUnauthorized},
		{"healthz is open", "GET", "/healthz", "", http.StatusOK},
		{"healthz ignores a bad token", "GET", "/healthz", "Bearer wrong", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := h.do(tc.method, tc.path, "", hdr...)
			mustStatus(t, r, tc.want)
			if tc.want == http.StatusUnauthorized {
				if msg, _ := r.apiError(t); msg != "missing or invalid bearer token" {
					t.Errorf("error = %q", msg)
				}
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
				}
			}
		})
	}
	if h.rt.server("app", "a").State() != pool.StateUp {
		t.Error("an unauthorized drain changed the server")
	}
	if logs := h.log.String(); strings.Contains(logs, token) || strings.Contains(logs, token[:5]) {
		t.Errorf("the token (or part of it) was logged:\n%s", logs)
	}
	if !strings.Contains(h.log.String(), "admin: unauthorized request") {
		t.Errorf("refusals not logged:\n%s", h.log.String())
	}
}

func TestNoAuthWhenNoToken(t *testing.T) {
	h := newHarness(t, "")
	for _, path := range []string{"/api/v1/pools", "/api/v1/version", "/metrics", "/healthz"} {
		mustStatus(t, h.do("GET", path, ""), http.StatusOK)
	}
	mustStatus(t, h.do("GET", "/api/v1/pools", "", "Authorization", "Bearer anything"), http.StatusOK)
}

func TestCrossOriginWrites(t *testing.T) {
	for _, token := range []string{"", "tok"} {
		h := newHarness(t, token)
		host := strings.TrimPrefix(h.srv.URL, "http://")
		a := h.rt.server("app", "a")
		for _, tc := range []struct {
			name, method string
			hdr          []string
			want         int
		}{
			{"foreign origin", "POST", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
			{"same host other port", "POST", []string{"Origin", "http://127.0.0.1:1"}, http.StatusForbidden},
			{"null origin", "POST", []string{"Origin", "null"}, http.StatusForbidden},
			{"fetch metadata cross-site", "POST", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
			{"same origin", "POST", []string{"Origin", "http://" + host}, http.StatusOK},
			{"no origin (curl)", "POST", nil, http.StatusOK},
			{"cross-origin read", "GET", []string{"Origin", "http://evil.example"}, http.StatusOK},
		} {
			t.Run(tc.name+"/token="+token, func(t *testing.T) {
				path := "/api/v1/pools/app/servers/a/drain"
				if tc.method == "GET" {
					path = "/api/v1/pools/app/servers/a"
				}
				a.SetAdmin(pool.AdminNone)
				r := h.do(tc.method, path, "", tc.hdr...)
				mustStatus(t, r, tc.want)
				if tc.want == http.StatusForbidden {
					if msg, _ := r.apiError(t); msg != "cross-origin request refused" {
						t.Errorf("error = %q", msg)
					}
					if a.State() != pool.StateUp {
						t.Errorf("refused write changed the server to %q", a.State())
					}
				}
			})
		}
	}
}
