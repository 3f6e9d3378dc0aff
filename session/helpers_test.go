package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fulcrumlb/fulcrum/keyring"
	"github.com/fulcrumlb/fulcrum/session"
	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/memstore"
	"github.com/fulcrumlb/fulcrum/state/redisstore"
)

// service is a real state service on loopback and a client for it.
type service struct {
	url    string
	client *session.Client
	ring   *keyring.Ring
}

func newMemStore(t *testing.T) state.Store { return memstore.New(memstore.Options{}) }

// newRedisStore is a Redis store under a key prefix of its own
// (FULCRUM_TEST_REDIS_ADDR, default 127.0.0.1:6379). The test fails, never
// skips, when Redis does not answer.
func newRedisStore(t *testing.T) state.Store {
	t.Helper()
	addr := os.Getenv("FULCRUM_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	url := "redis://" + addr + "/0"
	prefix := "fulcrum-test:session:" + state.NewLockID() + ":"
	s, err := redisstore.Open(t.Context(), url, redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("Redis is required (set FULCRUM_TEST_REDIS_ADDR or run make services): %v", err)
	}
	t.Cleanup(func() {
		o, _ := redis.ParseURL(url)
		rdb := redis.NewClient(o)
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return s
}

// newService starts a state service over store, with token (may be empty).
func newService(t *testing.T, store state.Store, token string) *service {
	t.Helper()
	srv, err := state.NewServer(state.Options{Store: store, Token: token, LockTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	ring, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &service{url: hs.URL, client: session.NewClient(hs.URL, token, nil), ring: ring}
}

// options are the middleware options for svc.
func (svc *service) options() session.Options {
	return session.Options{Client: svc.client, Sealer: svc.ring}
}

// counter increments "n" and answers the new value.
func counter(w http.ResponseWriter, r *http.Request) {
	s := session.From(r.Context())
	n, _, err := session.Get[int](s, "n")
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if err := s.Set("n", n+1); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	fmt.Fprint(w, n+1)
}

// peek answers "n" without changing anything, and whether Set was refused.
func peek(w http.ResponseWriter, r *http.Request) {
	s := session.From(r.Context())
	n, _, _ := session.Get[int](s, "n")
	fmt.Fprintf(w, "%d %v", n, errors.Is(s.Set("n", -1), session.ErrReadOnly))
}

// newJar returns a client with its own cookie jar.
func newJar(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
}

// get answers the body of GET url, failing t on anything but 200.
func get(t testing.TB, c *http.Client, url string) string {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return strings.TrimSpace(string(b))
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("answer %q is not a number", s)
	}
	return n
}

// cookie is the session cookie c holds for url.
func cookie(t *testing.T, c *http.Client, base string) *http.Cookie {
	t.Helper()
	req, _ := http.NewRequest("GET", base, nil)
	for _, ck := range c.Jar.Cookies(req.URL) {
		if ck.Name == session.DefaultCookieName {
			return ck
		}
	}
	t.Fatalf("no %s cookie for %s", session.DefaultCookieName, base)
	return nil
}

// idOf opens the session id a cookie names.
func idOf(t *testing.T, svc *service, ck *http.Cookie) string {
	t.Helper()
	id, err := svc.ring.Open(session.CookiePurpose, ck.Value)
	if err != nil {
		t.Fatalf("opening the cookie: %v", err)
	}
	return string(id)
}
