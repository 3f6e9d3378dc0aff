package session_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/keyring"
	"github.com/fulcrumlb/fulcrum/session"
	"github.com/fulcrumlb/fulcrum/state"
)

// TestConcurrentCounterLosesNoUpdate sends N concurrent read-write requests
// on one session; each increments a counter under the session's lock, so
// the counter ends at exactly N and every answer 1..N appears once.
func TestConcurrentCounterLosesNoUpdate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(*testing.T) state.Store
		n     int
	}{
		{"memory", newMemStore, 200},
		{"redis", newRedisStore, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t, tc.store(t), "")
			mw := session.Middleware(svc.options())
			app := httptest.NewServer(mw(http.HandlerFunc(counter)))
			defer app.Close()
			c := newJar(t)
			if got := get(t, c, app.URL); got != "1" {
				t.Fatalf("first request answered %q, want 1", got)
			}
			seen := make([]bool, tc.n+2)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range tc.n {
				wg.Go(func() {
					n := atoi(t, get(t, c, app.URL))
					mu.Lock()
					defer mu.Unlock()
					if n < 2 || n > tc.n+1 || seen[n] {
						t.Errorf("answer %d out of range or seen twice", n)
						return
					}
					seen[n] = true
				})
			}
			wg.Wait()
			if got, want := get(t, c, app.URL), fmt.Sprint(tc.n+2); got != want {
				t.Fatalf("after %d concurrent increments the counter answered %s, want %s", tc.n, got, want)
			}
		})
	}
}

// TestReadOnlyDoesNotWait: while a read-write request holds the lock, a
// read-only handler answers at once with the last written value and cannot
// change the session.
func TestReadOnlyDoesNotWait(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	entered, release := make(chan struct{}), make(chan struct{})
	slow := func(w http.ResponseWriter, r *http.Request) {
		session.From(r.Context()).Set("n", 99)
		close(entered)
		<-release
	}
	opts := svc.options()
	opts.LockWait = 20 * time.Second
	mw := session.Middleware(opts)
	mux := http.NewServeMux()
	mux.Handle("/inc", mw(http.HandlerFunc(counter)))
	mux.Handle("/slow", mw(http.HandlerFunc(slow)))
	mux.Handle("/peek", mw(session.ReadOnly(http.HandlerFunc(peek))))
	// The same, decided per request by Options.ReadOnly.
	opts.ReadOnly = func(r *http.Request) bool { return r.URL.Query().Has("ro") }
	mux.Handle("/peek2", session.Middleware(opts)(http.HandlerFunc(peek)))
	app := httptest.NewServer(mux)
	defer app.Close()

	c := newJar(t)
	get(t, c, app.URL+"/inc")
	get(t, c, app.URL+"/inc")
	done := make(chan string, 1)
	go func() { done <- get(t, c, app.URL+"/slow") }()
	<-entered
	for _, path := range []string{"/peek", "/peek2?ro"} {
		start := time.Now()
		if got := get(t, c, app.URL+path); got != "2 true" {
			t.Errorf("%s while a writer holds the lock answered %q, want %q (the snapshot, Set refused)", path, got, "2 true")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v: it waited behind the writer", path, d)
		}
	}
	close(release)
	<-done
	if got := get(t, c, app.URL+"/peek"); got != "99 true" {
		t.Errorf("after the writer: %q, want %q", got, "99 true")
	}
}

// TestReadOnlyWithoutCookieCreatesNothing: a read-only handler sees an empty
// session and no cookie is issued.
func TestReadOnlyWithoutCookieCreatesNothing(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	h := session.Middleware(svc.options())(session.ReadOnly(http.HandlerFunc(peek)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Body.String(); got != "0 true" {
		t.Errorf("answer %q, want %q", got, "0 true")
	}
	if sc := rec.Header().Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("read-only request without a session set cookies %q", sc)
	}
}

// TestPanicReleasesLock: a handler that panics after changing the session
// releases the lock without writing, and the panic reaches the caller.
func TestPanicReleasesLock(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	mw := session.Middleware(svc.options())
	inc := mw(http.HandlerFunc(counter))
	boom := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r.Context()).Set("n", 1000)
		panic("boom")
	}))
	rec := httptest.NewRecorder()
	inc.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	ck := rec.Result().Cookies()[0]

	var recovered any
	func() {
		defer func() { recovered = recover() }()
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(ck)
		boom.ServeHTTP(httptest.NewRecorder(), req)
	}()
	if recovered != "boom" {
		t.Fatalf("recovered %v, want the handler's panic \"boom\"", recovered)
	}
	id := idOf(t, svc, ck)
	snap, err := svc.client.Lock(t.Context(), id, 0)
	if err != nil {
		t.Fatalf("the lock is still held after the panic: %v", err)
	}
	svc.client.Unlock(t.Context(), id, snap.LockID)
	if got := string(snap.Data); got != `{"n":1}` {
		t.Errorf("session after the panic = %s, want {\"n\":1} (the panicking handler's change dropped)", got)
	}
}

// TestTamperedCookie: a cookie that does not open is a new session with a
// new cookie; the old session is untouched.
func TestTamperedCookie(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	h := session.Middleware(svc.options())(http.HandlerFunc(counter))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	good := rec.Result().Cookies()[0]
	id := idOf(t, svc, good)

	other, _ := keyring.Generate(time.Now())
	otherRing, _ := other.Seal(session.CookiePurpose, []byte(id))
	otherPurpose, _ := svc.ring.Seal("persist-cookie", []byte(id))
	flipped := []byte(good.Value)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct{ name, value string }{
		{"flipped byte", string(flipped)},
		{"truncated", good.Value[:len(good.Value)-2]},
		{"another ring", otherRing},
		{"another purpose", otherPurpose},
		{"bare id", id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(&http.Cookie{Name: good.Name, Value: tc.value})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Body.String(); got != "1" {
				t.Errorf("counter = %s, want 1 (a new session)", got)
			}
			cs := rec.Result().Cookies()
			if len(cs) != 1 || idOf(t, svc, cs[0]) == id {
				t.Errorf("want one new cookie naming a new session, got %v", cs)
			}
		})
	}
	snap, err := svc.client.Get(t.Context(), id)
	if err != nil || string(snap.Data) != `{"n":1}` {
		t.Errorf("the original session = %v, %v; want it untouched", snap, err)
	}
}

// TestRenew: login renews the id; the cookie is re-issued, values carry
// over, the old id can no longer be written and requests with it fail
// rather than fork the session.
func TestRenew(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	mw := session.Middleware(svc.options())
	mux := http.NewServeMux()
	mux.Handle("/inc", mw(http.HandlerFunc(counter)))
	mux.Handle("/login", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r.Context())
		if err := s.Renew(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s.Set("user", "ada")
		fmt.Fprint(w, s.ID())
	})))
	app := httptest.NewServer(mux)
	defer app.Close()
	c := newJar(t)
	get(t, c, app.URL+"/inc")
	get(t, c, app.URL+"/inc")
	before := cookie(t, c, app.URL)
	oldID := idOf(t, svc, before)
	newID := get(t, c, app.URL+"/login")
	after := cookie(t, c, app.URL)
	if newID == oldID || idOf(t, svc, after) != newID {
		t.Fatalf("login: old id %s, new id %s, cookie names %s; want a new id in the cookie", oldID, newID, idOf(t, svc, after))
	}
	if got := get(t, c, app.URL+"/inc"); got != "3" {
		t.Errorf("counter after login = %s, want 3 (values carried over)", got)
	}
	snap, _ := svc.client.Get(t.Context(), newID)
	if !bytes.Contains(snap.Data, []byte(`"user":"ada"`)) {
		t.Errorf("renewed session %s lacks the login's write", snap.Data)
	}
	if _, err := svc.client.Put(t.Context(), oldID, []byte(`{}`), session.PutOptions{}); !errors.Is(err, session.ErrRenewed) {
		t.Errorf("write to the old id: %v, want ErrRenewed", err)
	}
	req, _ := http.NewRequest("GET", app.URL+"/inc", nil)
	req.AddCookie(before)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("read-write request with the old cookie: %d, want 503", res.StatusCode)
	}
}

// TestUnchangedIsNotWritten: a read-write handler that changes nothing
// releases the lock and leaves the version alone.
func TestUnchangedIsNotWritten(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	mw := session.Middleware(svc.options())
	mux := http.NewServeMux()
	mux.Handle("/inc", mw(http.HandlerFunc(counter)))
	mux.Handle("/same", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r.Context())
		n, _, _ := session.Get[int](s, "n")
		s.Set("n", n) // the same value: not a change
	})))
	app := httptest.NewServer(mux)
	defer app.Close()
	c := newJar(t)
	get(t, c, app.URL+"/inc")
	id := idOf(t, svc, cookie(t, c, app.URL))
	v1, _ := svc.client.Get(t.Context(), id)
	get(t, c, app.URL+"/same")
	v2, _ := svc.client.Get(t.Context(), id)
	if v1.Version != v2.Version {
		t.Errorf("version went from %d to %d for an unchanged session", v1.Version, v2.Version)
	}
	if snap, err := svc.client.Lock(t.Context(), id, 0); err != nil {
		t.Errorf("lock not released: %v", err)
	} else {
		svc.client.Unlock(t.Context(), id, snap.LockID)
	}
}

// TestExpiredSessionStartsOver: a cookie naming a session that is gone gets
// a new session.
func TestExpiredSessionStartsOver(t *testing.T) {
	svc := newService(t, newMemStore(t), "")
	app := httptest.NewServer(session.Middleware(svc.options())(http.HandlerFunc(counter)))
	defer app.Close()
	c := newJar(t)
	get(t, c, app.URL)
	get(t, c, app.URL)
	id := idOf(t, svc, cookie(t, c, app.URL))
	if err := svc.client.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, app.URL); got != "1" {
		t.Errorf("after the session was deleted the counter answered %s, want 1", got)
	}
}

// TestClient covers the client's error mapping and authentication.
func TestClient(t *testing.T) {
	svc := newService(t, newMemStore(t), "s3cret")
	ctx := t.Context()
	snap, err := svc.client.Create(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	locked, err := svc.client.Lock(ctx, snap.ID, time.Second)
	if err != nil || locked.LockID == "" || string(locked.Data) != "hello" {
		t.Fatalf("Lock = %+v, %v", locked, err)
	}
	_, err = svc.client.Lock(ctx, snap.ID, 0)
	var e *session.Error
	if !errors.Is(err, session.ErrLocked) || !errors.As(err, &e) || e.Status != http.StatusLocked {
		t.Errorf("second Lock: %v, want ErrLocked (423)", err)
	}
	if _, err := svc.client.Put(ctx, snap.ID, []byte("x"), session.PutOptions{LockID: "nope"}); !errors.Is(err, session.ErrLockLost) {
		t.Errorf("Put with a foreign lock: %v, want ErrLockLost", err)
	}
	v, err := svc.client.Put(ctx, snap.ID, []byte("v2"), session.PutOptions{LockID: locked.LockID})
	if err != nil || v <= snap.Version {
		t.Errorf("Put = %d, %v; want a version above %d", v, err, snap.Version)
	}
	if _, err := svc.client.Put(ctx, snap.ID, []byte("v3"), session.PutOptions{IfMatch: snap.Version}); !errors.Is(err, session.ErrVersionMismatch) {
		t.Errorf("stale If-Match: %v, want ErrVersionMismatch", err)
	}
	if _, err := svc.client.Get(ctx, state.NewID()); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get unknown: %v, want ErrNotFound", err)
	}
	bad := session.NewClient(svc.url, "wrong", nil)
	if _, err := bad.Get(ctx, snap.ID); !errors.Is(err, session.ErrUnauthorized) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v, want ErrUnauthorized", err)
	}
}
