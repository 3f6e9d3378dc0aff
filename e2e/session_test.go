package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/demo"
	"github.com/fulcrumlb/fulcrum/keyring"
	"github.com/fulcrumlb/fulcrum/session"
	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/redisstore"
)

// TestSessionsSurviveAnyServer is issue 5's proof: the demo application on
// three servers behind fulcrum, round robin without persistence, sessions
// in the state service on Redis. One client's visit counter is right on
// every request (1, 2, 3, ... while round robin moves it between servers);
// one server is killed midway (listener and connections closed at once, as
// when the process dies) and the count goes on without a gap or a failed
// request: first while the keepalive still thinks it is up (fulcrum
// retries the refused connection elsewhere), then after it has marked it
// down.
func TestSessionsSurviveAnyServer(t *testing.T) {
	stateURL := startRedisStateService(t)
	ring, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	apps, err := demo.StartApps(3, demo.AppOptions{StateURL: stateURL, Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { demo.StopApps(apps) })
	f := startDemoFulcrum(t, apps)

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	count := 0
	visit := func(phase string) string {
		t.Helper()
		count++
		res, err := client.Get("http://" + f.addr + "/")
		if err != nil {
			t.Fatalf("%s, visit %d: %v", phase, count, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s, visit %d: status %d: %s", phase, count, res.StatusCode, body)
		}
		if got := res.Header.Get("X-Session-Visits"); got != strconv.Itoa(count) {
			t.Fatalf("%s: visit counter = %s, want %d (served by %s)", phase, got, count, res.Header.Get("X-Served-By"))
		}
		return res.Header.Get("X-Served-By")
	}

	served := map[string]int{}
	for range 12 {
		served[visit("all servers up")]++
	}
	for _, a := range apps {
		if served[a.Name] != 4 {
			t.Errorf("before the kill %s served %d of 12 requests, want 4 (round robin, no persistence): %v", a.Name, served[a.Name], served)
		}
	}

	victim := apps[1]
	victim.Kill()
	for range 9 { // the keepalive has not noticed yet: refused connections are retried
		if s := visit("just after the kill"); s == victim.Name {
			t.Fatalf("the killed server %s answered", s)
		}
	}
	srv := f.app.Pools()[0].Server(victim.Name)
	deadline := time.Now().Add(15 * time.Second)
	for srv.Usable() {
		if time.Now().After(deadline) {
			t.Fatalf("the keepalive never marked %s down", victim.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	served = map[string]int{}
	for range 10 {
		served[visit("after the keepalive marked it down")]++
	}
	if len(served) != 2 || served[victim.Name] != 0 {
		t.Errorf("after the kill the survivors should share the load: %v", served)
	}

	// The state service holds the count: what a fourth server would see.
	id := sessionID(t, jar, f.addr, ring)
	snap, err := session.NewClient(stateURL, "", nil).Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var values struct{ Visits int }
	if err := json.Unmarshal(snap.Data, &values); err != nil || values.Visits != count {
		t.Errorf("the state service holds %s (%v), want visits %d", snap.Data, err, count)
	}
}

// startRedisStateService runs the state service on Redis
// (FULCRUM_TEST_REDIS_ADDR, default 127.0.0.1:6379) under a key prefix of
// this run's own, and returns its URL. It fails, never skips, without Redis.
func startRedisStateService(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("FULCRUM_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	url := "redis://" + addr + "/0"
	prefix := "fulcrum-test:e2e:" + state.NewLockID() + ":"
	store, err := redisstore.Open(t.Context(), url, redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("Redis is required (set FULCRUM_TEST_REDIS_ADDR or run make services): %v", err)
	}
	srv, err := state.NewServer(state.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		o, _ := redis.ParseURL(url)
		rdb := redis.NewClient(o)
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return hs.URL
}

type demoFulcrum struct {
	addr string
	app  *app.App
}

// startDemoFulcrum runs fulcrum in-process with the demo's config without
// persistence: pool app, round robin, HTTP keepalives.
func startDemoFulcrum(t *testing.T, apps []*demo.App) *demoFulcrum {
	t.Helper()
	f := &demoFulcrum{addr: freePort(t)}
	path := filepath.Join(t.TempDir(), "fulcrum.yaml")
	text := demo.Config(demo.ConfigOptions{Apps: apps, Listen: f.addr, Admin: freePort(t)})
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	var logs syncBuffer
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	f.app = a
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		if t.Failed() {
			t.Logf("fulcrum's log:\n%s", logs.String())
		}
	})
	// Every server must be up before counting starts (rise 2).
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range a.Pools()[0].Servers() {
		for !s.Usable() {
			if time.Now().After(deadline) {
				t.Fatalf("server %s never came up", s.Name())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return f
}

// sessionID opens the session cookie the jar holds for addr.
func sessionID(t *testing.T, jar http.CookieJar, addr string, ring *keyring.Ring) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	for _, c := range jar.Cookies(req.URL) {
		if c.Name == demo.CookieName {
			id, err := ring.Open(session.CookiePurpose, c.Value)
			if err != nil {
				t.Fatalf("opening the session cookie: %v", err)
			}
			return string(id)
		}
	}
	t.Fatalf("no %s cookie for %s", demo.CookieName, addr)
	return ""
}
