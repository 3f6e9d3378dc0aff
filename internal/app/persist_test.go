package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/keyring"
)

// aspApps start servers that hand out ASP.NET_SessionId on /login and
// answer their name.
func aspApps(t *testing.T, n int) []string {
	var addrs []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s%d", i)
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/login" {
				http.SetCookie(w, &http.Cookie{Name: "ASP.NET_SessionId", Value: "id-" + name + "-" + r.URL.Query().Get("u"), Path: "/"})
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		addrs = append(addrs, s.Listener.Addr().String())
	}
	return addrs
}

func persistConfig(web, admin, dir, extra, persistence string, servers []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %s}\nlog: {access: false}\ndata_dir: %s\n%slisteners:\n  - {name: web, listen: %s, protocol: http, pool: app}\npools:\n  - name: app\n    keepalive: {type: none}\n    persistence: %s\n    servers:\n", admin, dir, extra, web, persistence)
	for i, s := range servers {
		fmt.Fprintf(&b, "      - {name: s%d, address: %q}\n", i, s)
	}
	return b.String()
}

func runApp(t *testing.T, path string) *app.App {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func get(t *testing.T, c *http.Client, url string) (string, *http.Response) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp
}

// TestAppCookiePersistenceSurvivesRestart: a learned ASP.NET session keeps
// its server, and a restarted fulcrum comes back with its table from disk.
func TestAppCookiePersistenceSurvivesRestart(t *testing.T) {
	servers := aspApps(t, 3)
	dir := t.TempDir()
	web, admin := freePort(t), freePort(t)
	path := filepath.Join(dir, "fulcrum.yaml")
	writeConfig(t, path, persistConfig(web, admin, filepath.Join(dir, "data"), "", "{mode: app_cookie, app_cookie: ASP.NET_SessionId, url: asp}", servers))
	a := runApp(t, path)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	owner, _ := get(t, client, "http://"+web+"/login?u=alice")
	for i := 0; i < 6; i++ {
		if got, _ := get(t, client, "http://"+web+"/"); got != owner {
			t.Fatalf("request %d went to %s, session is on %s", i, got, owner)
		}
	}
	body, _ := get(t, http.DefaultClient, "http://"+admin+"/api/v1/pools/app/persistence?key=id-"+owner+"-alice")
	if !strings.Contains(body, `"server":"`+owner+`"`) {
		t.Fatalf("admin lookup: %s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	a.Shutdown(ctx)
	cancel()

	a = runApp(t, path)
	defer a.Shutdown(context.Background())
	for i := 0; i < 6; i++ {
		if got, _ := get(t, client, "http://"+web+"/"); got != owner {
			t.Fatalf("after restart request %d went to %s, session is on %s", i, got, owner)
		}
	}
}

// TestSealedCookieAcrossNodes: two fulcrum nodes loading the same key ring
// honour each other's persistence cookies (the farm's machine key).
func TestSealedCookieAcrossNodes(t *testing.T) {
	servers := aspApps(t, 3)
	dir := t.TempDir()
	ring, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.json")
	if err := ring.Save(keys); err != nil {
		t.Fatal(err)
	}
	var webs []string
	for i := 0; i < 2; i++ {
		web, admin := freePort(t), freePort(t)
		path := filepath.Join(dir, fmt.Sprintf("lb%d.yaml", i))
		writeConfig(t, path, persistConfig(web, admin, filepath.Join(dir, fmt.Sprintf("data%d", i)), "keyring: "+keys+"\n", "{mode: cookie, cookie: FULCRUM, timeout: 30m}", servers))
		a := runApp(t, path)
		t.Cleanup(func() { a.Shutdown(context.Background()) })
		webs = append(webs, web)
	}
	// A client pinned through lb0 goes on through lb1 with the same cookie.
	for c := 0; c < 5; c++ {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		owner, resp := get(t, client, "http://"+webs[0]+"/")
		cookie := resp.Header.Get("Set-Cookie")
		if cookie == "" {
			t.Fatal("no persistence cookie")
		}
		req, _ := http.NewRequest("GET", "http://"+webs[1]+"/", nil)
		req.Header.Set("Cookie", strings.SplitN(cookie, ";", 2)[0])
		resp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp2.Body)
		resp2.Body.Close()
		if string(b) != owner || resp2.Header.Get("Set-Cookie") != "" {
			t.Fatalf("client %d: lb1 sent it to %s (Set-Cookie %q), lb0 pinned it to %s", c, b, resp2.Header.Get("Set-Cookie"), owner)
		}
	}
	_ = os.Remove
}
