package state_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/service"
)

// testSealer is an AES-GCM Sealer with the purpose as additional data,
// standing in for the key ring.
type testSealer struct{ aead cipher.AEAD }

func newTestSealer(t *testing.T) *testSealer {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &testSealer{aead: aead}
}

func (s *testSealer) Seal(purpose string, plaintext []byte) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plaintext, []byte(purpose))), nil
}

func (s *testSealer) Open(purpose, token string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errors.New("malformed token")
	}
	return s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(purpose))
}

// Test services: FULCRUM_TEST_REDIS_ADDR and FULCRUM_TEST_POSTGRES_DSN.
// Tests fail, never skip, when they do not answer.
func redisURL() string {
	addr := os.Getenv("FULCRUM_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	return "redis://" + addr + "/0"
}

func postgresDSN() string {
	if v := os.Getenv("FULCRUM_TEST_POSTGRES_DSN"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// uniqueName is a per-run name safe as a PostgreSQL schema or key prefix.
func uniqueName(kind string) string {
	return "fulcrum_test_" + kind + "_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(state.NewLockID()))
}

// storeConfigs are the four stores, each in a place of its own that is
// removed when the test ends.
func storeConfigs(t *testing.T) map[string]func(t *testing.T) service.StoreConfig {
	return map[string]func(t *testing.T) service.StoreConfig{
		"memory": func(t *testing.T) service.StoreConfig { return service.StoreConfig{Type: "memory"} },
		"bolt": func(t *testing.T) service.StoreConfig {
			return service.StoreConfig{Type: "bolt", Path: filepath.Join(t.TempDir(), "state.db")}
		},
		"redis": func(t *testing.T) service.StoreConfig {
			prefix := uniqueName("redis") + ":"
			t.Cleanup(func() { removeRedisKeys(t, prefix) })
			return service.StoreConfig{Type: "redis", URL: redisURL(), Prefix: prefix}
		},
		"postgres": func(t *testing.T) service.StoreConfig {
			schema := uniqueName("pg")
			t.Cleanup(func() { dropSchema(t, schema) })
			return service.StoreConfig{Type: "postgres", URL: postgresDSN(), Schema: schema}
		},
	}
}

func removeRedisKeys(t testing.TB, prefix string) {
	o, _ := redis.ParseURL(redisURL())
	rdb := redis.NewClient(o)
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("removing test keys: %v", err)
	}
}

func dropSchema(t testing.TB, schema string) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		t.Errorf("dropping test schema: %v", err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("dropping test schema: %v", err)
	}
}

// newService starts a Server on a loopback httptest server.
func newService(t *testing.T, opts state.Options) (*state.Server, *client) {
	t.Helper()
	srv, err := state.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv, &client{t: t, base: hs.URL, token: opts.Token}
}

type client struct {
	t     *testing.T
	base  string
	token string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; headers come in name, value pairs.
func (c *client) do(method, path string, body []byte, headers ...string) response {
	c.t.Helper()
	r, err := c.try(method, path, body, headers...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is do returning transport errors.
func (c *client) try(method, path string, body []byte, headers ...string) (response, error) {
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

func (c *client) create(data string) string {
	c.t.Helper()
	r := c.do("POST", "/v1/sessions", []byte(data))
	if r.status != http.StatusCreated {
		c.t.Fatalf("create: got %d %s, want 201", r.status, r.body)
	}
	return strings.TrimPrefix(r.header.Get("Location"), "/v1/sessions/")
}

func expect(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got status %d (%s), want %d", what, r.status, bytes.TrimSpace(r.body), status)
	}
}
