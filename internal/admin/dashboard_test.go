package admin_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// noRedirect is a client that shows redirects instead of following them.
func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func send(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func login(t *testing.T, c *http.Client, base, token string, hdr ...string) *http.Response {
	t.Helper()
	form := url.Values{"token": {token}}.Encode()
	return send(t, c, "POST", base+"/login", strings.NewReader(form),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

func TestLoginCookie(t *testing.T) {
	const token = "dashboard-token-123"
	h := newHarness(t, token)
	c := noRedirect()
	base := h.srv.URL

	// A browser without a session is sent to the login form; scripts get 401.
	if r := send(t, c, "GET", base+"/", nil); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("GET / = %d to %q, want 303 to /login", r.StatusCode, r.Header.Get("Location"))
	}
	if r := send(t, c, "GET", base+"/login", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("GET /login = %d, want 200", r.StatusCode)
	}
	if r := send(t, c, "GET", base+"/ui/app.js", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /ui/app.js without a session = %d, want 401", r.StatusCode)
	}

	bad := login(t, c, base, "wrong")
	body, _ := io.ReadAll(bad.Body)
	if bad.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "not valid") || len(bad.Cookies()) != 0 {
		t.Fatalf("bad token: %d, cookies %v, body %s; want 401, no cookie, the form with an error", bad.StatusCode, bad.Cookies(), body)
	}

	good := login(t, c, base, token)
	if good.StatusCode != http.StatusSeeOther || good.Header.Get("Location") != "/" {
		t.Fatalf("good token: %d to %q, want 303 to /", good.StatusCode, good.Header.Get("Location"))
	}
	cookies := good.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v, want one", cookies)
	}
	ck := cookies[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge <= 0 {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/, a max age", ck)
	}
	if strings.Contains(ck.Value, token) {
		t.Errorf("cookie carries the token: %q", ck.Value)
	}
	withCookie := []string{"Cookie", ck.Name + "=" + ck.Value}
	for _, path := range []string{"/", "/ui/app.js", "/api/v1/pools", "/api/v1/session"} {
		if r := send(t, c, "GET", base+path, nil, withCookie...); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the cookie = %d, want 200", path, r.StatusCode)
		}
	}
	if r := send(t, c, "POST", base+"/api/v1/pools/app/servers/a/drain", nil, withCookie...); r.StatusCode != http.StatusOK {
		t.Errorf("drain with the cookie = %d, want 200", r.StatusCode)
	}
	// A forged or altered cookie is refused.
	last := ck.Value[len(ck.Value)-1]
	flip := map[bool]string{true: "A", false: "B"}[last != 'A']
	for name, v := range map[string]string{
		"altered mac": ck.Value[:len(ck.Value)-1] + flip,
		"no mac":      strings.Split(ck.Value, ".")[0],
		"the token":   token,
	} {
		if r := send(t, c, "GET", base+"/api/v1/pools", nil, "Cookie", "fulcrum_admin="+v); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, r.StatusCode)
		}
	}
	// A login from another site is refused like any cross-origin write.
	if r := login(t, c, base, token, "Origin", "http://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login = %d, want 403", r.StatusCode)
	}
	// Logout ends the session for good.
	out := send(t, c, "POST", base+"/logout", nil, withCookie...)
	if out.StatusCode != http.StatusSeeOther || len(out.Cookies()) != 1 || out.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d, cookies %v; want 303 clearing the cookie", out.StatusCode, out.Cookies())
	}
	if r := send(t, c, "GET", base+"/api/v1/pools", nil, withCookie...); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", r.StatusCode)
	}
	if strings.Contains(h.log.String(), token) || strings.Contains(h.log.String(), ck.Value) {
		t.Error("the token or the cookie was logged")
	}
}

func TestNoLoginWithoutToken(t *testing.T) {
	h := newHarness(t, "")
	c := noRedirect()
	if r := send(t, c, "GET", h.srv.URL+"/", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want the dashboard", r.StatusCode)
	}
	if r := send(t, c, "GET", h.srv.URL+"/login", nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /login = %d, want 303 to the dashboard", r.StatusCode)
	}
	r := send(t, c, "GET", h.srv.URL+"/", nil)
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
}

func TestHostCheck(t *testing.T) {
	rt := newFakeRuntime()
	s, err := admin.New(admin.Options{Runtime: rt, Hosts: []string{"lb-admin.example.net"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:9090", http.StatusOK},
		{"[::1]:9090", http.StatusOK},
		{"10.1.2.3", http.StatusOK},
		{"localhost:9090", http.StatusOK},
		{"admin.localhost", http.StatusOK},
		{"LB-Admin.Example.NET.:9090", http.StatusOK},
		{"evil.example:9090", http.StatusMisdirectedRequest}, // DNS rebinding
		{"127.0.0.1.evil.example", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	} {
		t.Run(tc.host, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/v1/pools", nil)
			req.Host = tc.host
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Errorf("Host %q: %d, want %d; %s", tc.host, w.Code, tc.want, w.Body)
			}
		})
	}
}

type eventSnapshot struct {
	Pools []struct {
		Name    string
		Servers []struct {
			Name  string
			State string
			RPS   float64 `json:"rps"`
		}
	}
	Listeners []admin.ListenerInfo
	Cluster   bool
}

// readEvent reads the next "snapshot" event.
func readEvent(t *testing.T, br *bufio.Reader) eventSnapshot {
	t.Helper()
	var event, data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		case line == "" && data != "":
			if event != "snapshot" {
				t.Fatalf("event %q, want snapshot", event)
			}
			var s eventSnapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				t.Fatalf("decoding %s: %v", data, err)
			}
			return s
		}
	}
}

func TestEventStream(t *testing.T) {
	rt := newFakeRuntime()
	s, err := admin.New(admin.Options{Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	s.Mount("GET /api/v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	first := readEvent(t, br)
	if len(first.Pools) != 2 || first.Pools[0].Servers[0].State != "up" || !first.Cluster {
		t.Fatalf("first snapshot = %+v", first)
	}

	// A state change is sent at once, not at the next second.
	start := time.Now()
	rt.server("app", "a").SetAdmin(pool.AdminDraining)
	for {
		ev := readEvent(t, br)
		if ev.Pools[0].Servers[0].State == "draining" {
			break
		}
	}
	if d := time.Since(start); d > 700*time.Millisecond {
		t.Errorf("state change sent after %s, want within a few polls", d)
	}

	// Close ends the stream (the root calls it on shutdown).
	s.Close()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, br); done <- err }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream outlived Close")
	}
}

func TestServerDetail(t *testing.T) {
	h := newHarness(t, "")
	h.do("POST", "/api/v1/pools/app/servers/b/disable", "")
	r := h.do("GET", "/api/v1/pools/app/servers/b/detail", "")
	mustStatus(t, r, http.StatusOK)
	var d struct {
		Pool     string
		Server   struct{ Name, State string }
		Timeline struct {
			From, To time.Time
			Segments []struct {
				From, To time.Time
				State    string
			}
		}
		Persistence *int
		Checks      any
	}
	r.decode(t, &d)
	if d.Pool != "app" || d.Server.Name != "b" || d.Server.State != "disabled" {
		t.Errorf("detail = %+v", d)
	}
	if span := d.Timeline.To.Sub(d.Timeline.From); span != time.Hour {
		t.Errorf("timeline spans %s, want 1h", span)
	}
	seg := d.Timeline.Segments
	if len(seg) != 2 || seg[0].State != "up" || seg[1].State != "disabled" || !seg[1].To.Equal(d.Timeline.To) {
		t.Errorf("segments = %+v, want up then disabled until now", seg)
	}
	if d.Persistence == nil || *d.Persistence != 0 {
		t.Errorf("persistence = %v, want 0 (table, no entries)", d.Persistence)
	}
	mustStatus(t, h.do("GET", "/api/v1/pools/app/servers/zz/detail", ""), http.StatusNotFound)
}
