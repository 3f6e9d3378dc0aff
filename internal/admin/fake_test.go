package admin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// fakeRuntime is a Runtime over real pool.Servers, as the composition root
// would hold them.
type fakeRuntime struct {
	mu        sync.Mutex
	pools     []*pool.Pool
	reloadErr error
	rehashErr error
	rehashed  []string
	last      map[string]admin.CheckSummary
	checks    map[string]any
	tables    map[string]*persist.Table
}

func (f *fakeRuntime) Persistence(p string) (admin.PersistTable, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tables[p]
	return t, ok
}

var _ admin.Runtime = (*fakeRuntime)(nil)

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		pools: []*pool.Pool{
			pool.New("app", "round_robin", []*pool.Server{
				pool.NewServer("a", "127.0.0.1:9001", 1),
				pool.NewServer("b", "127.0.0.1:9002", 3),
			}),
			pool.New("api", "least_conn", []*pool.Server{pool.NewServer("api1", "[::1]:9011", 1)}),
		},
		last:   map[string]admin.CheckSummary{},
		checks: map[string]any{},
		tables: map[string]*persist.Table{"app": persist.NewTable(persist.Options{Timeout: time.Hour, MaxEntries: 100})},
	}
}

func (f *fakeRuntime) Pools() []*pool.Pool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pools
}

func (f *fakeRuntime) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadErr
}

func (f *fakeRuntime) LastCheck(p, s string) (admin.CheckSummary, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.last[p+"/"+s]
	return c, ok
}

func (f *fakeRuntime) Checks(p, s string) (any, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.checks[p+"/"+s]
	return c, ok
}

func (f *fakeRuntime) Rehash(p, s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rehashErr != nil {
		return f.rehashErr
	}
	f.rehashed = append(f.rehashed, p+"/"+s)
	return nil
}

func (f *fakeRuntime) server(p, s string) *pool.Server {
	for _, pl := range f.Pools() {
		if pl.Name() == p {
			return pl.Server(s)
		}
	}
	return nil
}

// syncBuffer is a log sink safe for the server's handler goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	t   *testing.T
	rt  *fakeRuntime
	srv *httptest.Server
	log *syncBuffer
	tok string // sent as the bearer token when not empty
}

func newHarness(t *testing.T, token string) *harness {
	t.Helper()
	h := &harness{t: t, rt: newFakeRuntime(), log: &syncBuffer{}, tok: token}
	s, err := admin.New(admin.Options{
		Runtime: h.rt,
		Token:   token,
		Logger:  slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: "v1.2.3-test",
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = httptest.NewServer(s.Handler())
	t.Cleanup(h.srv.Close)
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v, failing the test on error.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// apiError decodes an error body.
func (r response) apiError(t *testing.T) (msg string, details []string) {
	t.Helper()
	var e struct {
		Error   string   `json:"error"`
		Details []string `json:"details"`
	}
	r.decode(t, &e)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	return e.Error, e.Details
}

// do sends a request with the harness token; hdr adds headers (pairs).
func (h *harness) do(method, path, body string, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatalf("NewRequest: %v", err)
	}
	if h.tok != "" {
		req.Header.Set("Authorization", "Bearer "+h.tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("reading %s %s: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// mustStatus fails the test unless r has status want.
func mustStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body %s", r.status, want, r.body)
	}
}

var checkAt = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
