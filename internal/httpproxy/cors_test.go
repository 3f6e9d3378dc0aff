package httpproxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

func TestCORS(t *testing.T) {
	var reached atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*") // overridden by the route's policy
		fmt.Fprint(w, "data")
	}))
	defer backend.Close()
	policy := &httpproxy.CORS{
		AllowOrigins:     []string{"https://app.example.com"},
		AllowMethods:     []string{"GET", "POST", "PUT", "DELETE"},
		AllowHeaders:     []string{"Content-Type", "X-Requested-With"},
		AllowCredentials: true,
		MaxAge:           10 * time.Minute,
	}
	f := startProxy(t, fixtureOpts{cors: policy}, backend.Listener.Addr().String())
	do := func(method, origin string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+f.addr+"/api/x", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("preflight allowed", func(t *testing.T) {
		before := reached.Load()
		r := do("OPTIONS", "https://app.example.com", map[string]string{
			"Access-Control-Request-Method":  "PUT",
			"Access-Control-Request-Headers": "content-type, x-requested-with",
		})
		want := map[string]string{
			"Access-Control-Allow-Origin":      "https://app.example.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     "GET, POST, PUT, DELETE",
			"Access-Control-Allow-Headers":     "Content-Type, X-Requested-With",
			"Access-Control-Max-Age":           "600",
		}
		if r.StatusCode != 204 {
			t.Fatalf("status %d, want 204", r.StatusCode)
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if r.Header.Get("Vary") == "" {
			t.Errorf("no Vary on a preflight answer")
		}
		if reached.Load() != before {
			t.Errorf("preflight reached the server")
		}
	})
	for name, c := range map[string]struct {
		origin, method, headers string
	}{
		"other origin":      {"https://evil.example", "PUT", ""},
		"origin with port":  {"https://app.example.com:444", "PUT", ""},
		"scheme differs":    {"http://app.example.com", "PUT", ""},
		"method not listed": {"https://app.example.com", "PATCH", ""},
		"header not listed": {"https://app.example.com", "PUT", "X-Secret"},
	} {
		t.Run("preflight refused: "+name, func(t *testing.T) {
			h := map[string]string{"Access-Control-Request-Method": c.method}
			if c.headers != "" {
				h["Access-Control-Request-Headers"] = c.headers
			}
			r := do("OPTIONS", c.origin, h)
			if r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("status %d ACAO %q, want 403 with no CORS headers", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
			}
		})
	}
	t.Run("actual request allowed", func(t *testing.T) {
		r := do("GET", "https://app.example.com", nil)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("ACAO %q credentials %q", got, r.Header.Get("Access-Control-Allow-Credentials"))
		}
		if len(r.Header.Values("Access-Control-Allow-Origin")) != 1 {
			t.Fatalf("server's own ACAO leaked through: %v", r.Header.Values("Access-Control-Allow-Origin"))
		}
	})
	t.Run("actual request disallowed origin", func(t *testing.T) {
		r := do("GET", "https://evil.example", nil)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("disallowed origin got ACAO %q", got)
		}
		if r.Header.Get("Vary") != "Origin" {
			t.Fatalf("Vary = %q, want Origin", r.Header.Get("Vary"))
		}
	})
	t.Run("plain OPTIONS goes to the server", func(t *testing.T) {
		before := reached.Load()
		do("OPTIONS", "", nil)
		if reached.Load() != before+1 {
			t.Fatalf("a non-preflight OPTIONS did not reach the server")
		}
	})
}

func TestCORSWildcardNeverWithCredentials(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") }))
	defer backend.Close()
	for _, creds := range []bool{false, true} {
		f := startProxy(t, fixtureOpts{cors: &httpproxy.CORS{AllowOrigins: []string{"*"}, AllowCredentials: creds}}, backend.Listener.Addr().String())
		req, _ := http.NewRequest("GET", "http://"+f.addr+"/", nil)
		req.Header.Set("Origin", "https://any.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if creds && got != "" || !creds && got != "*" {
			t.Errorf("credentials %v: ACAO %q", creds, got)
		}
	}
}
