//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
)

// dashboardRun is what browser/dashboard.mjs printed.
type dashboardRun struct {
	Browser  string `json:"browser"`
	Error    string `json:"error"`
	LoginURL string `json:"loginURL"`
	BadLogin struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
		URL    string `json:"url"`
	} `json:"badLogin"`
	ServersShown []struct {
		Pool, Server, State string
	} `json:"serversShown"`
	ListenersShown []string `json:"listenersShown"`
	CookieHTTPOnly []struct {
		HTTPOnly bool   `json:"httpOnly"`
		SameSite string `json:"sameSite"`
	} `json:"cookieHttpOnly"`
	CookieVisibleToScript bool   `json:"cookieVisibleToScript"`
	StopStatus            int    `json:"stopStatus"`
	DownAfterMS           int    `json:"downAfterMs"`
	ReloadsWhileWaiting   int    `json:"reloadsWhileWaiting"`
	ConfirmText           string `json:"confirmText"`
	DrainShown            bool   `json:"drainShown"`
	ServerPage            struct {
		TimelineStates []string `json:"timelineStates"`
		FailReason     string   `json:"failReason"`
		Connections    []string `json:"connections"`
	} `json:"serverPage"`
	Console     []struct{ Type, Text string } `json:"console"`
	Screenshots []string                      `json:"screenshots"`
}

const dashboardToken = "dashboard-e2e-token-0123456789"

// TestBrowserDashboard loads the admin dashboard of an in-process fulcrum
// (three real backends with 100ms keepalives, a token on the admin) in
// headless Chromium: a bad token is refused at the login form, the right
// one shows every server up; a backend the test stops shows down without a
// reload; the drain button, confirmed, drains a server (checked through the
// API); the stopped server's page draws its timeline and failing check.
func TestBrowserDashboard(t *testing.T) {
	node := browserTools(t)
	names := []string{"a", "b", "c"}
	backends := map[string]*httptest.Server{}
	var servers strings.Builder
	for _, n := range names {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "server "+n) }))
		t.Cleanup(b.Close)
		backends[n] = b
		fmt.Fprintf(&servers, "      - {name: %s, address: %q}\n", n, b.Listener.Addr().String())
	}
	adminAddr := startDashboardFulcrum(t, servers.String())

	var stopOnce sync.Once
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stop" {
			http.NotFound(w, r)
			return
		}
		stopOnce.Do(backends["b"].Close)
		fmt.Fprint(w, "stopped")
	}))
	t.Cleanup(control.Close)

	shots := artifactsDir(t, "dashboard")
	plan := map[string]any{"url": "http://" + adminAddr + "/", "token": dashboardToken, "badToken": "not-the-token",
		"control": control.URL, "pool": "app", "servers": names, "stop": "b", "drain": "a"}
	run := runDashboard(t, node, plan, shots)
	t.Logf("Chromium %s; screenshots in %s: %v", run.Browser, shots, run.Screenshots)
	if run.Error != "" {
		t.Fatalf("browser run failed: %s\nconsole: %+v", run.Error, run.Console)
	}

	if !strings.HasSuffix(run.LoginURL, "/login") {
		t.Errorf("unauthenticated visit landed on %s, want the login form", run.LoginURL)
	}
	if run.BadLogin.Status != http.StatusUnauthorized || !strings.Contains(run.BadLogin.Error, "not valid") ||
		!strings.HasSuffix(run.BadLogin.URL, "/login") {
		t.Errorf("bad token: %+v, want 401 with the login form saying the token is not valid", run.BadLogin)
	}
	if len(run.CookieHTTPOnly) != 1 || !run.CookieHTTPOnly[0].HTTPOnly || run.CookieHTTPOnly[0].SameSite != "Strict" {
		t.Errorf("login cookie = %+v, want one HttpOnly SameSite=Strict cookie", run.CookieHTTPOnly)
	}
	if run.CookieVisibleToScript {
		t.Error("the login cookie is visible to the page's script")
	}
	var shown []string
	for _, s := range run.ServersShown {
		shown = append(shown, s.Pool+"/"+s.Server+"="+s.State)
	}
	if got, want := strings.Join(shown, " "), "app/a=up app/b=up app/c=up"; got != want {
		t.Errorf("servers shown: %s, want %s", got, want)
	}
	if strings.Join(run.ListenersShown, ",") != "web" {
		t.Errorf("listeners shown: %v, want web", run.ListenersShown)
	}
	if run.StopStatus != http.StatusOK || run.ReloadsWhileWaiting != 0 {
		t.Errorf("stop answered %d; page reloaded %d times while waiting, want 0", run.StopStatus, run.ReloadsWhileWaiting)
	}
	t.Logf("stopped backend shown down after %d ms", run.DownAfterMS)
	if !strings.Contains(run.ConfirmText, "Drain app/a?") || !run.DrainShown {
		t.Errorf("drain: dialog %q, shown %v", run.ConfirmText, run.DrainShown)
	}
	if got := serverState(t, adminAddr, "a"); got != "draining" {
		t.Errorf("API: server a is %q after the drain button, want draining", got)
	}
	if got := serverState(t, adminAddr, "b"); got != "down" {
		t.Errorf("API: server b is %q after its backend stopped, want down", got)
	}
	if st := run.ServerPage.TimelineStates; len(st) < 2 || st[len(st)-1] != "down" {
		t.Errorf("server page timeline states %v, want ... down", st)
	}
	if !strings.Contains(run.ServerPage.FailReason, "refused") {
		t.Errorf("server page failing check reason %q, want connection refused", run.ServerPage.FailReason)
	}
	// The passing checks before the stop each name their connection (new,
	// or reused with its count).
	named := false
	for _, c := range run.ServerPage.Connections {
		named = named || strings.Contains(c, "connection")
	}
	if !named {
		t.Errorf("server page connection lines %q, want checks naming their connection", run.ServerPage.Connections)
	}
	for _, c := range run.Console {
		if c.Type == "error" || c.Type == "pageerror" {
			// EventSource reconnects are not expected either: the stream stays up.
			t.Errorf("browser console %s: %s", c.Type, c.Text)
		}
	}
}

// startDashboardFulcrum starts fulcrum with a token on the admin API and
// returns the admin's address.
func startDashboardFulcrum(t *testing.T, servers string) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(dashboardToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`admin: {listen: %s, token_file: %s}
log: {access: false}
listeners:
  - {name: web, listen: %s, protocol: http, pool: app}
pools:
  - name: app
    keepalive: {type: http, path: /, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}
    servers:
%s`, freePort(t), tokenFile, freePort(t), servers)
	path := filepath.Join(dir, "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var logs syncBuffer
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Version: "e2e",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		if t.Failed() {
			t.Logf("fulcrum's log:\n%s", logs.String())
		}
	})
	return a.AdminAddr().String()
}

// serverState reads a server's state through the admin API.
func serverState(t *testing.T, admin, server string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+"/api/v1/pools/app/servers/"+server, nil)
	req.Header.Set("Authorization", "Bearer "+dashboardToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sv struct{ State string }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &sv); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return sv.State
}

// runDashboard runs browser/dashboard.mjs with plan.
func runDashboard(t *testing.T, node string, plan any, shots string) *dashboardRun {
	t.Helper()
	var run dashboardRun
	runNodeScript(t, node, "browser/dashboard.mjs", plan, shots, 45*time.Second, &run)
	return &run
}
