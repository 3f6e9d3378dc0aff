package httpproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/keyring"
)

// sessionApps starts n apps that answer their name; an app hands out an
// ASP.NET-style session cookie on /login.
func sessionApps(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("s%d", i)
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/login":
				http.SetCookie(w, &http.Cookie{Name: "ASP.NET_SessionId", Value: "sess-" + name + "-" + r.URL.Query().Get("u"), Path: "/"})
			case "/logout":
				http.SetCookie(w, &http.Cookie{Name: "ASP.NET_SessionId", Value: "", Path: "/", MaxAge: -1})
			case "/cookieless":
				http.Redirect(w, r, "/(S(abc"+name+"))/home.aspx", http.StatusFound)
				return
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		addrs = append(addrs, s.Listener.Addr().String())
	}
	return addrs
}

func fetchWith(t *testing.T, c *http.Client, url string, hdr ...string) (string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp
}

func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestPersistSourceIP(t *testing.T) {
	table := persist.NewTable(persist.Options{Timeout: time.Minute, MaxEntries: 100})
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistSourceIP, Table: table, Mask: persist.SourceMask{V4: 24, V6: 64}}}, sessionApps(t, 3)...)
	first, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/")
	for i := 0; i < 10; i++ {
		if got, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/"); got != first {
			t.Fatalf("request %d went to %s, pinned to %s", i, got, first)
		}
	}
	if e, ok := table.Peek("127.0.0.0"); !ok || e.Server != first {
		t.Fatalf("table entry for 127.0.0.0/24 = %+v %v, want %s", e, ok, first)
	}
	srv := f.target.Pool.Server(first)
	// Draining keeps pinned clients coming.
	srv.SetAdmin(pool.AdminDraining)
	if got, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/"); got != first {
		t.Fatalf("draining server lost its pinned client to %s", got)
	}
	// Down: redispatch to another server and re-pin there.
	srv.SetAdmin(pool.AdminNone)
	srv.SetHealth(pool.HealthDown)
	moved, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/")
	if moved == first {
		t.Fatalf("request still went to the down server")
	}
	srv.SetHealth(pool.HealthUp)
	if got, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/"); got != moved {
		t.Fatalf("after redispatch the client went to %s, want it re-pinned to %s", got, moved)
	}
}

func TestPersistOnDownFail(t *testing.T) {
	table := persist.NewTable(persist.Options{Timeout: time.Minute, MaxEntries: 100})
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistSourceIP, Table: table, Mask: persist.SourceMask{V4: 32, V6: 128}, Fail: true}}, sessionApps(t, 2)...)
	first, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/")
	f.target.Pool.Server(first).SetHealth(pool.HealthDown)
	if _, resp := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/"); resp.StatusCode != 503 {
		t.Fatalf("on_down fail: status %d, want 503", resp.StatusCode)
	}
}

func TestPersistSealedCookie(t *testing.T) {
	ring, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistCookie, Cookie: "FULCRUM", Sealer: ring, Timeout: 30 * time.Minute}}, sessionApps(t, 3)...)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	first, resp := fetchWith(t, client, "http://"+f.addr+"/")
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "FULCRUM=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "Max-Age=1800") {
		t.Fatalf("Set-Cookie = %q", sc)
	}
	// Sealed: no address in clear, and only the key ring opens it.
	value := strings.TrimPrefix(strings.SplitN(sc, ";", 2)[0], "FULCRUM=")
	if strings.Contains(sc, "127.0.0.1") || strings.Contains(sc, f.target.Pool.Server(first).Address()) {
		t.Fatalf("cookie reveals the server: %q", sc)
	}
	if name, err := persist.DecodeCookie(ring, "app", value); err != nil || name != first {
		t.Fatalf("DecodeCookie = %q, %v; want %s", name, err, first)
	}
	if _, err := persist.DecodeCookie(ring, "other-pool", value); err == nil {
		t.Fatalf("a cookie sealed for pool app opened for another pool")
	}
	for i := 0; i < 10; i++ {
		got, resp := fetchWith(t, client, "http://"+f.addr+"/")
		if got != first {
			t.Fatalf("request %d went to %s, cookie pins %s", i, got, first)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("cookie set again on a pinned request")
		}
	}
	// A forged or tampered cookie is ignored: balanced and re-issued.
	_, resp = fetchWith(t, http.DefaultClient, "http://"+f.addr+"/", "Cookie", "FULCRUM="+strings.Repeat("A", 60))
	if !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "FULCRUM=") {
		t.Fatalf("tampered cookie not replaced")
	}
}

func TestPersistAppCookieAndURL(t *testing.T) {
	table := persist.NewTable(persist.Options{Timeout: time.Minute, MaxEntries: 100})
	um, _ := persist.ParseURLMode("asp")
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistAppCookie, AppCookie: "ASP.NET_SessionId", Table: table, URL: um, HasURL: true}}, sessionApps(t, 3)...)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	who, _ := fetchWith(t, client, "http://"+f.addr+"/login?u=alice")
	for i := 0; i < 10; i++ {
		if got, _ := fetchWith(t, client, "http://"+f.addr+"/page"); got != who {
			t.Fatalf("request %d with the session cookie went to %s, session lives on %s", i, got, who)
		}
	}
	if n := table.Counts()[who]; n != 1 {
		t.Fatalf("table holds %d entries for %s, want 1", n, who)
	}
	// The same id seen in a cookieless URL reaches the same server.
	id := "sess-" + who + "-alice"
	if got, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/(S("+id+"))/page.aspx"); got != who {
		t.Fatalf("cookieless URL with the id went to %s, want %s", got, who)
	}
	// Logout deletes the entry.
	fetchWith(t, client, "http://"+f.addr+"/logout")
	if _, ok := table.Peek(id); ok {
		t.Fatalf("entry survived the application deleting its cookie")
	}
	// An id handed out in a redirect's Location is learned too.
	c := noRedirect(nil)
	_, resp := fetchWith(t, c, "http://"+f.addr+"/cookieless")
	loc := resp.Header.Get("Location")
	issuer := strings.TrimSuffix(strings.TrimPrefix(loc, "/(S(abc"), "))/home.aspx")
	if got, _ := fetchWith(t, c, "http://"+f.addr+loc); got != issuer {
		t.Fatalf("URL id from Location went to %s, issued by %s", got, issuer)
	}
}

func TestPersistWebSocketFollowsPin(t *testing.T) {
	table := persist.NewTable(persist.Options{Timeout: time.Minute, MaxEntries: 100})
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistSourceIP, Table: table, Mask: persist.SourceMask{V4: 32, V6: 128}}}, sessionApps(t, 3)...)
	first, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/")
	// An upgrade request the apps refuse still goes where the pin says.
	got, _ := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/ws", "Connection", "Upgrade", "Upgrade", "websocket")
	if got != first {
		t.Fatalf("upgrade request went to %s, pinned to %s", got, first)
	}
}

// TestPersistURLJSessionID: mode url with ;jsessionid= (a Java app's
// cookieless sessions, and its JSESSIONID cookie on the same server).
func TestPersistURLJSessionID(t *testing.T) {
	var addrs []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("s%d", i)
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/login" {
				http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "J" + name, Path: "/"})
				http.Redirect(w, r, "/cart;jsessionid=J"+name+"?item=1", http.StatusFound)
				return
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		addrs = append(addrs, s.Listener.Addr().String())
	}
	table := persist.NewTable(persist.Options{Timeout: time.Minute, MaxEntries: 100})
	um, err := persist.ParseURLMode("jsessionid")
	if err != nil {
		t.Fatal(err)
	}
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistURL, Table: table, URL: um, HasURL: true}}, addrs...)
	c := noRedirect(nil)
	_, resp := fetchWith(t, c, "http://"+f.addr+"/login")
	loc := resp.Header.Get("Location")
	issuer := strings.TrimPrefix(strings.SplitN(strings.SplitN(loc, "=", 2)[1], "?", 2)[0], "J")
	for i := 0; i < 6; i++ {
		if got, _ := fetchWith(t, c, "http://"+f.addr+loc); got != issuer {
			t.Fatalf("request %d with the URL id went to %s, the session is on %s", i, got, issuer)
		}
	}
	// Requests without an id are balanced as usual.
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		got, _ := fetchWith(t, c, "http://"+f.addr+"/cart")
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Fatalf("requests without an id all went to %v", seen)
	}
}

// TestPersistSealedCookieReused: a sealed cookie is reused for clients sent
// to the same server for a short while (Timeout/64, at most a second), then
// sealed anew; every token opens to the server.
func TestPersistSealedCookieReused(t *testing.T) {
	ring, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 64 * 100 * time.Millisecond // reused for 100ms
	f := startProxy(t, fixtureOpts{persist: &httpproxy.Persistence{Mode: httpproxy.PersistCookie, Cookie: "FULCRUM", Sealer: ring, Timeout: timeout}}, sessionApps(t, 1)...)
	token := func() string {
		_, resp := fetchWith(t, http.DefaultClient, "http://"+f.addr+"/")
		v := strings.TrimPrefix(strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0], "FULCRUM=")
		if name, err := persist.DecodeCookie(ring, "app", v); err != nil || name != "s0" {
			t.Fatalf("cookie %q opens to %q, %v; want s0", v, name, err)
		}
		return v
	}
	// Two clients in a row: the second gets the first one's token, unless
	// the window closed between them (then a third try must share).
	a, b := token(), token()
	if a != b {
		if c := token(); c != b {
			t.Fatalf("three clients in a row got three tokens: the sealed cookie is not reused")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if c := token(); c == b {
		t.Fatalf("token still reused %v after it was sealed (window %v)", 300*time.Millisecond, timeout/64)
	}
}
