package state_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/memstore"
	"github.com/fulcrumlb/fulcrum/state/service"
)

func memOpts() state.Options { return state.Options{Store: memstore.New(memstore.Options{})} }

func TestCreateGetPut(t *testing.T) {
	_, c := newService(t, memOpts())
	r := c.do("POST", "/v1/sessions", []byte("hello\x00world"))
	expect(t, "create", r, http.StatusCreated)
	var body struct{ ID string }
	if err := json.Unmarshal(r.body, &body); err != nil || !state.ValidID(body.ID) {
		t.Fatalf("create: body %s, want {\"id\": a 43-character base64url id}", r.body)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(body.ID); err != nil || len(raw) != 32 {
		t.Fatalf("id %q: want 256 bits of base64url", body.ID)
	}
	if loc := r.header.Get("Location"); loc != "/v1/sessions/"+body.ID {
		t.Fatalf("Location: got %q", loc)
	}
	id := body.ID

	r = c.do("GET", "/v1/sessions/"+id, nil)
	expect(t, "get", r, http.StatusOK)
	if string(r.body) != "hello\x00world" || r.header.Get("ETag") != `"1"` {
		t.Fatalf("get: got %q ETag %s, want the bytes written and \"1\"", r.body, r.header.Get("ETag"))
	}
	expect(t, "put", c.do("PUT", "/v1/sessions/"+id, []byte("v2")), http.StatusNoContent)
	r = c.do("PUT", "/v1/sessions/"+id, []byte("v3"), "If-Match", `"1"`)
	expect(t, "put with a stale If-Match", r, http.StatusPreconditionFailed)
	var e struct{ Error, Code string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code != "version_mismatch" || e.Error == "" {
		t.Fatalf("error body: got %s, want JSON with error and code version_mismatch", r.body)
	}
	r = c.do("PUT", "/v1/sessions/"+id, []byte("v3"), "If-Match", `"2"`)
	expect(t, "put with If-Match", r, http.StatusNoContent)
	if r.header.Get("ETag") != `"3"` {
		t.Fatalf("ETag after put: got %s, want \"3\"", r.header.Get("ETag"))
	}
	expect(t, "touch", c.do("POST", "/v1/sessions/"+id+"/touch", nil), http.StatusNoContent)
	expect(t, "delete", c.do("DELETE", "/v1/sessions/"+id, nil), http.StatusNoContent)
	expect(t, "get after delete", c.do("GET", "/v1/sessions/"+id, nil), http.StatusNotFound)
}

func TestNeverAdoptsClientIDs(t *testing.T) {
	_, c := newService(t, memOpts())
	for _, id := range []string{state.NewID(), "chosen-by-client", strings.Repeat("a", 43)} {
		expect(t, "put to unknown id "+id, c.do("PUT", "/v1/sessions/"+id, []byte("x")), http.StatusNotFound)
		expect(t, "get of unknown id", c.do("GET", "/v1/sessions/"+id, nil), http.StatusNotFound)
	}
}

func TestLockAPI(t *testing.T) {
	_, c := newService(t, memOpts())
	id := c.create("a")
	r := c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=1s", nil)
	expect(t, "lock", r, http.StatusOK)
	lockID := r.header.Get("Lock-Id")
	if lockID == "" || string(r.body) != "a" {
		t.Fatalf("lock: got Lock-Id %q body %q", lockID, r.body)
	}
	start := time.Now()
	r = c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=200ms", nil)
	expect(t, "second lock", r, http.StatusLocked)
	if time.Since(start) < 200*time.Millisecond || r.header.Get("Lock-Age") == "" {
		t.Fatalf("423 after %v with Lock-Age %q, want after the wait, with the age", time.Since(start), r.header.Get("Lock-Age"))
	}
	expect(t, "snapshot read while locked", c.do("GET", "/v1/sessions/"+id, nil), http.StatusOK)
	expect(t, "put without the lock", c.do("PUT", "/v1/sessions/"+id, []byte("x")), http.StatusLocked)
	expect(t, "put with another lock", c.do("PUT", "/v1/sessions/"+id, []byte("x"), "Lock-Id", "nope"), http.StatusConflict)
	expect(t, "unlock without Lock-Id", c.do("POST", "/v1/sessions/"+id+"/unlock", nil), http.StatusBadRequest)
	expect(t, "put with the lock", c.do("PUT", "/v1/sessions/"+id, []byte("b"), "Lock-Id", lockID), http.StatusNoContent)
	expect(t, "put with the released lock", c.do("PUT", "/v1/sessions/"+id, []byte("c"), "Lock-Id", lockID), http.StatusConflict)
	r = c.do("GET", "/v1/sessions/"+id+"?lock=exclusive", nil)
	expect(t, "lock again", r, http.StatusOK)
	expect(t, "unlock", c.do("POST", "/v1/sessions/"+id+"/unlock", nil, "Lock-Id", r.header.Get("Lock-Id")), http.StatusNoContent)
	expect(t, "bad lock mode", c.do("GET", "/v1/sessions/"+id+"?lock=shared", nil), http.StatusBadRequest)
	expect(t, "bad wait", c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=soon", nil), http.StatusBadRequest)
}

// TestLockTimeout: a stuck holder's lock is broken after lock_timeout; the
// waiting request gets it and the stuck holder's late write is refused.
func TestLockTimeout(t *testing.T) {
	opts := memOpts()
	opts.LockTimeout = 300 * time.Millisecond
	_, c := newService(t, opts)
	id := c.create("original")
	stuck := c.do("GET", "/v1/sessions/"+id+"?lock=exclusive", nil).header.Get("Lock-Id")
	start := time.Now()
	r := c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=5s", nil)
	expect(t, "lock behind a stuck one", r, http.StatusOK)
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("granted after %v, want about the lock timeout (300ms)", d)
	}
	expect(t, "new holder's put", c.do("PUT", "/v1/sessions/"+id, []byte("new"), "Lock-Id", r.header.Get("Lock-Id")), http.StatusNoContent)
	expect(t, "late writer", c.do("PUT", "/v1/sessions/"+id, []byte("late"), "Lock-Id", stuck), http.StatusConflict)
	if got := c.do("GET", "/v1/sessions/"+id, nil); string(got.body) != "new" {
		t.Fatalf("got %q, want new", got.body)
	}
}

// TestLockFIFO: waiters are granted in arrival order.
func TestLockFIFO(t *testing.T) {
	_, c := newService(t, memOpts())
	id := c.create("")
	holder := c.do("GET", "/v1/sessions/"+id+"?lock=exclusive", nil).header.Get("Lock-Id")
	const n = 5
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=10s", nil)
			if r.status != http.StatusOK {
				t.Errorf("waiter %d: got %d", i, r.status)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			c.do("PUT", "/v1/sessions/"+id, fmt.Appendf(nil, "%d", i), "Lock-Id", r.header.Get("Lock-Id"))
		})
		waitFor(t, c, i+1) // waiter i is in line before i+1 comes
	}
	expect(t, "release", c.do("POST", "/v1/sessions/"+id+"/unlock", nil, "Lock-Id", holder), http.StatusNoContent)
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("grant order %v, want 0..%d in arrival order", order, n-1)
		}
	}
}

// waitFor waits until n requests wait for a lock.
func waitFor(t *testing.T, c *client, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st struct {
			LockWaiters int `json:"lock_waiters"`
		}
		if err := json.Unmarshal(c.do("GET", "/v1/stats", nil).body, &st); err != nil {
			t.Fatal(err)
		}
		if st.LockWaiters >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lock waiters, want %d", st.LockWaiters, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCounterEveryStore: 1,000 read-write requests (GET with lock, PUT with
// Lock-Id) from many clients on one session lose no update, with every store.
func TestCounterEveryStore(t *testing.T) {
	for name, cfg := range storeConfigs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, err := service.OpenStore(t.Context(), cfg(t))
			if err != nil {
				t.Fatalf("opening the %s store (Redis and PostgreSQL must be running): %v", name, err)
			}
			_, c := newService(t, state.Options{Store: store})
			id := c.create("0")
			const workers, total = 16, 1000
			next := make(chan struct{}, total)
			for range total {
				next <- struct{}{}
			}
			close(next)
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for range next {
						r := c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=30s", nil)
						if r.status != http.StatusOK {
							t.Errorf("lock: got %d %s", r.status, r.body)
							return
						}
						n, _ := strconv.Atoi(string(r.body))
						w := c.do("PUT", "/v1/sessions/"+id, []byte(strconv.Itoa(n+1)), "Lock-Id", r.header.Get("Lock-Id"))
						if w.status != http.StatusNoContent {
							t.Errorf("put: got %d %s", w.status, w.body)
							return
						}
					}
				})
			}
			wg.Wait()
			if r := c.do("GET", "/v1/sessions/"+id, nil); string(r.body) != strconv.Itoa(total) {
				t.Fatalf("counter: got %s, want %d", r.body, total)
			}
		})
	}
}

func TestRenew(t *testing.T) {
	_, c := newService(t, memOpts())
	id := c.create("secret")
	r := c.do("POST", "/v1/sessions/"+id+"/renew", nil)
	expect(t, "renew", r, http.StatusCreated)
	var body struct{ ID string }
	if err := json.Unmarshal(r.body, &body); err != nil || !state.ValidID(body.ID) || body.ID == id {
		t.Fatalf("renew: got %s, want a new id", r.body)
	}
	if got := c.do("GET", "/v1/sessions/"+body.ID, nil); string(got.body) != "secret" {
		t.Fatalf("new id: got %q", got.body)
	}
	if got := c.do("GET", "/v1/sessions/"+id, nil); string(got.body) != "secret" {
		t.Fatalf("old id in grace: got %d %q", got.status, got.body)
	}
	expect(t, "write to the old id", c.do("PUT", "/v1/sessions/"+id, []byte("x")), http.StatusConflict)
}

func TestMaxSize(t *testing.T) {
	opts := memOpts()
	opts.MaxSize = 1024
	_, c := newService(t, opts)
	expect(t, "create too large", c.do("POST", "/v1/sessions", make([]byte, 1025)), http.StatusRequestEntityTooLarge)
	id := c.create(string(make([]byte, 1024)))
	expect(t, "put too large", c.do("PUT", "/v1/sessions/"+id, make([]byte, 2000)), http.StatusRequestEntityTooLarge)
}

func TestAuth(t *testing.T) {
	opts := memOpts()
	opts.Token = "s3cret"
	_, c := newService(t, opts)
	id := c.create("a")
	for _, h := range []string{"", "Bearer wrong", "Bearer s3cret2", "Basic s3cret", "s3cret"} {
		anon := &client{t: t, base: c.base}
		r := anon.do("GET", "/v1/sessions/"+id, nil, "Authorization", h)
		expect(t, "Authorization "+h, r, http.StatusUnauthorized)
		if !strings.Contains(string(r.body), `"unauthorized"`) {
			t.Fatalf("401 body: %s", r.body)
		}
	}
	expect(t, "lower-case scheme", (&client{t: t, base: c.base}).do("GET", "/v1/sessions/"+id, nil, "Authorization", "bearer s3cret"), http.StatusOK)
}

func TestProtect(t *testing.T) {
	opts := memOpts()
	opts.Sealer = newTestSealer(t)
	_, c := newService(t, opts)
	r := c.do("POST", "/v1/protect", []byte(`{"purpose": "csrf", "data": "aGVsbG8="}`))
	expect(t, "protect", r, http.StatusOK)
	var tok struct{ Token string }
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("protect: %s", r.body)
	}
	r = c.do("POST", "/v1/unprotect", fmt.Appendf(nil, `{"purpose": "csrf", "token": %q}`, tok.Token))
	expect(t, "unprotect", r, http.StatusOK)
	if strings.TrimSpace(string(r.body)) != `{"data":"aGVsbG8="}` {
		t.Fatalf("unprotect: got %s", r.body)
	}
	tampered := []byte(tok.Token)
	tampered[len(tampered)/2] ^= 1
	for name, body := range map[string]string{
		"other purpose": fmt.Sprintf(`{"purpose": "login", "token": %q}`, tok.Token),
		"tampered":      fmt.Sprintf(`{"purpose": "csrf", "token": %q}`, tampered),
		"garbage":       `{"purpose": "csrf", "token": "x"}`,
		"not JSON":      `{`,
		"no purpose":    fmt.Sprintf(`{"token": %q}`, tok.Token),
	} {
		if r := c.do("POST", "/v1/unprotect", []byte(body)); r.status != http.StatusBadRequest {
			t.Errorf("unprotect %s: got %d, want 400", name, r.status)
		}
	}
	_, bare := newService(t, memOpts())
	expect(t, "protect without a key ring", bare.do("POST", "/v1/protect", []byte(`{"purpose":"x","data":""}`)), http.StatusNotImplemented)
}

func TestEncryptAtRest(t *testing.T) {
	raw := memstore.New(memstore.Options{})
	_, c := newService(t, state.Options{Store: state.Sealed(raw, newTestSealer(t))})
	id := c.create("plain secret")
	if r := c.do("GET", "/v1/sessions/"+id, nil); string(r.body) != "plain secret" {
		t.Fatalf("get through the sealed store: got %q", r.body)
	}
	stored, err := raw.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.Data, []byte("secret")) {
		t.Fatalf("stored data is plaintext: %q", stored.Data)
	}
}

func TestStatsAndMetrics(t *testing.T) {
	opts := memOpts()
	opts.LockTimeout = 100 * time.Millisecond
	srv, c := newService(t, opts)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(srv.Collector()); err != nil {
		t.Fatalf("registering the collector: %v", err)
	}
	id := c.create("a")
	c.create("b")
	c.do("GET", "/v1/sessions/"+id+"?lock=exclusive", nil)
	expect(t, "timed-out lock", c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=10ms", nil), http.StatusLocked)
	expect(t, "breaking lock", c.do("GET", "/v1/sessions/"+id+"?lock=exclusive&wait=2s", nil), http.StatusOK)
	r := c.do("GET", "/v1/stats", nil)
	expect(t, "stats", r, http.StatusOK)
	var st map[string]int64
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]int64{"sessions": 2, "locked": 1, "lock_timeouts": 1, "locks_broken": 1, "lock_waits": 2} {
		if st[k] != want {
			t.Errorf("stats %s: got %d, want %d (%s)", k, st[k], want, r.body)
		}
	}
	for name, want := range map[string]float64{"fulcrum_state_sessions": 2, "fulcrum_state_locks_held": 1, "fulcrum_state_lock_timeouts_total": 1} {
		if got := metricValue(t, reg, name); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	if got := metricValue(t, reg, "fulcrum_state_store_seconds"); got == 0 {
		t.Errorf("fulcrum_state_store_seconds: no observations")
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		if m.GetHistogram() != nil {
			return float64(m.GetHistogram().GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}
