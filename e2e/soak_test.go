//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// soakCookie is the application's session cookie in the soak test; the
// pool persists on it (mode app_cookie).
const soakCookie = "SID"

// TestSoak runs steady load through fulcrum while the config is reloaded
// every 700 ms (every 3 s in a long run), alternating two valid configs: A
// has servers s1..s3 with weight 1; B adds s4 and changes the weights and the
// keepalive interval (so each reload replaces the checkers). Meanwhile s2
// fails its keepalive on and off, and four clients run short sessions (1 to
// 20 requests each, a new session id every time, persistence app_cookie
// with a 512-entry table) on keep-alive connections: the table sees a
// steady stream of new ids and evicts.
//
// It asserts that no request failed (the reloads and flaps lose nothing),
// that sessions on s1 and s3 (always up, in both configs) never moved, and
// that goroutines, open files and heap after the run are back near where
// they were after a warm-up (measured the same way: load stopped, config A,
// s2 up, idle connections expired and swept), and goroutines and open files
// back at their count before fulcrum started once it has shut down.
//
// SOAK_DURATION sets the load time (warm-up included); without it the test
// runs 7 s, which is what `go test ./...` and CI run. `make soak` runs 3 m.
func TestSoak(t *testing.T) {
	total, reloadEvery := 7*time.Second, 700*time.Millisecond
	if d := envDuration(t, "SOAK_DURATION", 0); d > 0 {
		total, reloadEvery = d, 3*time.Second
	}
	runSoak(t, soakOptions{total: total, reloadEvery: reloadEvery, artifact: "soak.json"})
}

// TestSoakTableResize is TestSoak with config B also resizing the
// persistence table (512 <-> 1024 entries, one shard either way, so nothing
// is evicted by the resize itself): a session must stay on its server
// across the reload.
func TestSoakTableResize(t *testing.T) {
	runSoak(t, soakOptions{total: 4 * time.Second, reloadEvery: 400 * time.Millisecond, resize: true, artifact: "soak-resize.json"})
}

type soakOptions struct {
	total       time.Duration // load time, warm-up included
	reloadEvery time.Duration
	resize      bool   // config B also changes the table's max_entries
	artifact    string // file name of the figures
}

func runSoak(t *testing.T, o soakOptions) {
	if testing.Short() {
		t.Skip("the soak runs 7 s or more; skipped with -short")
	}
	warm := min(o.total/4, 20*time.Second)
	base := measureSettled()

	backends := make([]*killable, 4)
	for i := range backends {
		backends[i] = newKillable(t, fmt.Sprintf("s%d", i+1), sessionHandler)
	}
	s := &soak{t: t, backends: backends, web: freePort(t), admin: freePort(t), dataDir: t.TempDir(), reloadEvery: o.reloadEvery, resize: o.resize}
	var stopApp func()
	s.app, s.path, stopApp = startInProcess(t, s.config(false))
	s.events = &eventLog{start: time.Now()}

	r1 := s.phase(warm)
	m1 := s.settle()
	r2 := s.phase(o.total - warm)
	m2 := s.settle()
	entries := s.tableEntries()
	stopApp()
	for _, b := range backends {
		b.kill()
	}
	after, leaked := waitBack(base, 5*time.Second)

	sent, errs := r1.Sent+r2.Sent, r1.Errors+r2.Errors
	moved := map[string]int64{}
	s.moved.Range(func(k, v any) bool { moved[k.(string)] = v.(*atomic.Int64).Load(); return true })
	reloads, flaps := s.events.count("reload"), s.events.count("s2-down")
	figures := map[string]any{
		"test": t.Name(), "duration_s": o.total.Seconds(), "warmup_s": warm.Seconds(), "clients": 4,
		"requests": sent, "errors": errs, "error_samples": append(r1.Samples(), r2.Samples()...),
		"reloads": reloads, "flaps": flaps,
		"sessions": s.sessions.Load(), "sessions_moved_from": moved, "table_entries_at_end": entries,
		"after_warmup": m1, "at_end": m2, "before_start": base, "after_shutdown": after,
	}
	file := writeArtifact(t, o.artifact, figures)
	t.Logf("soak: %d requests in %v, %d errors; %d reloads, %d flaps of s2, %d sessions (moved: %v), %d table entries",
		sent, o.total, errs, reloads, flaps, s.sessions.Load(), moved, entries)
	t.Logf("soak: after warm-up %+v, at end %+v; before start %+v, after shutdown %+v; figures in %s", m1, m2, base, after, file)

	if errs != 0 {
		for _, e := range append(r1.Samples(), r2.Samples()...) {
			t.Errorf("failed request: %s", e)
		}
		t.Errorf("events:\n%s", s.events.String())
		t.Errorf("%d of %d requests failed during reloads and flaps, want 0", errs, sent)
	}
	if n := moved["s1"] + moved["s3"]; n != 0 {
		t.Errorf("%d sessions left s1 or s3, which never went down nor away, want 0", n)
	}
	if reloads < 4 || sent < 1000 {
		t.Errorf("soak too light to prove anything: %d reloads, %d requests", reloads, sent)
	}
	// Tolerances (see e2e/README.md): idle connections are swept before each
	// measurement, so only stragglers remain: two goroutines (one connection,
	// both ends in this process), four files (two connections), and a
	// quarter of the heap (the table is full at both points; what differs is
	// buffers held by connections and the allocator's rounding).
	if m2.Goroutines > m1.Goroutines+2 || m2.FDs > m1.FDs+4 || m2.HeapInuse > m1.HeapInuse+m1.HeapInuse/4 {
		t.Errorf("grew during the run: after warm-up %+v, at end %+v; want at most +2 goroutines, +4 files, +25%% heap", m1, m2)
	}
	if leaked != "" {
		t.Errorf("after shutdown: %s", leaked)
	}
}

// soak drives one soak run.
type soak struct {
	t           *testing.T
	backends    []*killable
	web, admin  string
	dataDir     string
	path        string
	app         *app.App
	reloadEvery time.Duration
	resize      bool
	events      *eventLog

	sessions atomic.Int64
	moved    sync.Map // server name -> *atomic.Int64: sessions that left it
	reloads  int
}

// config is config A, or B with b.
func (s *soak) config(b bool) string {
	weights, servers, interval, entries := []int{1, 1, 1}, 3, "100ms", 512
	if b {
		weights, servers, interval = []int{3, 1, 2, 1}, 4, "150ms"
	}
	if b && s.resize {
		entries = 1024
	}
	var w strings.Builder
	fmt.Fprintf(&w, `admin: {listen: %s}
log: {access: false}
data_dir: %s
listeners:
  - {name: web, listen: %s, protocol: http, pool: app}
pools:
  - name: app
    balance: weighted
    retries: 3
    max_idle: 8
    persistence: {mode: app_cookie, app_cookie: %s, max_entries: %d, timeout: 1m}
    keepalive:
      type: http
      method: GET
      path: /health
      interval: %s
      timeout: %s
      fall: 1
      rise: 1
      passive: {fall: 3, within: 1s}
    servers:
`, s.admin, s.dataDir, s.web, soakCookie, entries, interval, interval)
	for i := range servers {
		fmt.Fprintf(&w, "      - {name: %s, address: %s, weight: %d}\n", s.backends[i].name, s.backends[i].addr, weights[i])
	}
	return w.String()
}

func (s *soak) reload(b bool) {
	if err := os.WriteFile(s.path, []byte(s.config(b)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := s.app.Reload(); err != nil {
		s.t.Fatalf("reload %d: %v", s.reloads, err)
	}
	s.reloads++
	s.events.add("reload", map[bool]string{false: "A", true: "B"}[b])
}

// phase runs load, reloads and flaps for d, then leaves config A loaded and
// s2 healthy.
func (s *soak) phase(d time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(s.reloadEvery)
		defer tick.Stop()
		for b := true; ; b = !b {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s.reload(b)
		}
	}()
	go func() {
		defer wg.Done()
		flapper := s.backends[1]
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(200+rand.IntN(600)) * time.Millisecond):
			}
			up := !flapper.healthy.Load()
			flapper.healthy.Store(up)
			s.events.add(map[bool]string{false: "s2-down", true: "s2-up"}[up], "")
		}
	}()
	res := runLoad(ctx, s.web, 4, s.events.start, s.sessionWorker)
	wg.Wait()
	s.reload(false)
	s.backends[1].healthy.Store(true)
	return res
}

// sessionWorker returns one client's loop body: a session is a first
// request without the cookie (the server hands out a new id), then 0 to 19
// requests carrying it, each of which must reach the same server unless that
// server went down or away.
func (s *soak) sessionWorker() func(*rawClient) error {
	var sid, server string
	left := 0
	return func(c *rawClient) error {
		if left == 0 {
			r, err := c.echo()
			if err != nil {
				return err
			}
			sid = ""
			for _, ck := range r.setCookie {
				if ck.Name == soakCookie {
					sid = ck.Value
				}
			}
			if sid == "" {
				return fmt.Errorf("%s set no %s cookie", r.body, soakCookie)
			}
			server, left = r.body, rand.IntN(20)
			s.sessions.Add(1)
			return nil
		}
		left--
		r, err := c.echo("Cookie: " + soakCookie + "=" + sid)
		if err != nil {
			return err
		}
		if r.body != server {
			n, _ := s.moved.LoadOrStore(server, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			server = r.body
		}
		return nil
	}
}

// settle brings fulcrum to a comparable idle state and measures it: config A
// (phase left it), s2 seen up, the backends' idle timeout past (they close
// their keep-alive connections), then two sequential requests per server so
// each pool of idle connections drops its closed ones and keeps one.
func (s *soak) settle() usage {
	t := s.t
	p := s.app.Pools()[0]
	waitUntil(t, 3*time.Second, "every server of config A up", func() bool {
		for _, sv := range p.Servers() {
			if sv.State() != pool.StateUp {
				return false
			}
		}
		return true
	})
	time.Sleep(700 * time.Millisecond)
	c := &rawClient{addr: s.web}
	for range 2 * len(p.Servers()) {
		if _, err := c.echo(); err != nil {
			t.Errorf("sweeping idle connections: %v", err)
		}
	}
	c.close()
	return measureUsage()
}

// tableEntries asks the admin API how many entries the persistence table holds.
func (s *soak) tableEntries() int {
	resp, err := http.Get("http://" + s.admin + "/api/v1/pools/app/persistence")
	if err != nil {
		s.t.Errorf("persistence table: %v", err)
		return -1
	}
	defer resp.Body.Close()
	var v struct{ Entries int }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		s.t.Errorf("persistence table: %v", err)
		return -1
	}
	return v.Entries
}

// sessionHandler is echoHandler with sessions: a request without the
// session cookie gets a new random id in Set-Cookie; /health answers 503
// while the backend is set unhealthy.
func sessionHandler(b *killable) http.Handler {
	name := b.name
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if !b.healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			io.WriteString(w, "ok")
			return
		}
		if _, err := r.Cookie(soakCookie); err != nil {
			http.SetCookie(w, &http.Cookie{Name: soakCookie, Value: randomHex(12), Path: "/"})
		}
		io.WriteString(w, name+" "+r.Header.Get("X-Request-Id"))
	})
}

// waitUntil polls cond every 10 ms until it holds, or fails the test.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadShrinkingTableKeepsRecentSessions fills a 4096-entry
// persistence table (four shards) with sessions, reloads with max_entries
// 2048, and checks that the 500 most recent sessions still reach their
// server: the documented policy is that the least recently used entries go
// first.
func TestReloadShrinkingTableKeepsRecentSessions(t *testing.T) {
	backends := make([]*killable, 3)
	for i := range backends {
		backends[i] = newKillable(t, fmt.Sprintf("s%d", i+1), sessionHandler)
	}
	s := &soak{t: t, backends: backends, web: freePort(t), admin: freePort(t), dataDir: t.TempDir()}
	conf := func(entries int) string {
		var w strings.Builder
		fmt.Fprintf(&w, "admin: {listen: %s}\nlog: {access: false}\ndata_dir: %s\nlisteners:\n  - {name: web, listen: %s, protocol: http, pool: app}\n"+
			"pools:\n  - name: app\n    persistence: {mode: app_cookie, app_cookie: %s, max_entries: %d}\n    keepalive: {type: none}\n    servers:\n",
			s.admin, s.dataDir, s.web, soakCookie, entries)
		for _, b := range backends {
			fmt.Fprintf(&w, "      - {name: %s, address: %s}\n", b.name, b.addr)
		}
		return w.String()
	}
	a, path, _ := startInProcess(t, conf(4096))
	c := &rawClient{addr: s.web}
	defer c.close()
	type session struct{ id, server string }
	var recent []session
	for i := range 4096 {
		r, err := c.echo()
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		if i >= 4096-500 {
			recent = append(recent, session{r.setCookie[0].Value, r.body})
		}
	}
	if err := os.WriteFile(path, []byte(conf(2048)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, ss := range recent {
		r, err := c.echo("Cookie: " + soakCookie + "=" + ss.id)
		if err != nil {
			t.Fatal(err)
		}
		if r.body != ss.server {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("after shrinking the table to 2048 entries, %d of the 500 most recent sessions moved, want 0", moved)
	}
}

// loadResult counts what the clients saw.
type loadResult struct {
	Sent, Errors int64
	Failures     []loadFailure // the first 10 000
}

// loadFailure is one failed request.
type loadFailure struct {
	At     time.Duration // since the start, when the failure was seen
	Status int           // 0 when no response came
	Err    string
}

func (f loadFailure) String() string {
	return fmt.Sprintf("+%v: %s", f.At.Round(time.Millisecond), f.Err)
}

// Samples is the first 20 failures, for reports.
func (r loadResult) Samples() []string { return firstFailures(r.Failures) }

func firstFailures(fs []loadFailure) []string {
	out := []string{}
	for _, f := range fs[:min(len(fs), 20)] {
		out = append(out, f.String())
	}
	return out
}

// statusError is a response other than 200.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d, body %q", e.status, e.body) }

// runLoad runs workers clients, each calling its own newWorker() in a loop
// on its own connection until ctx ends.
func runLoad(ctx context.Context, addr string, workers int, start time.Time, newWorker func() func(*rawClient) error) loadResult {
	var sent, failed atomic.Int64
	var mu sync.Mutex
	var failures []loadFailure
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &rawClient{addr: addr}
			defer c.close()
			do := newWorker()
			for ctx.Err() == nil {
				err := do(c)
				sent.Add(1)
				if err == nil {
					continue
				}
				failed.Add(1)
				f := loadFailure{At: time.Since(start), Err: err.Error()}
				var se *statusError
				if errors.As(err, &se) {
					f.Status = se.status
				}
				mu.Lock()
				if len(failures) < 10000 {
					failures = append(failures, f)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return loadResult{Sent: sent.Load(), Errors: failed.Load(), Failures: failures}
}

// usage is what a leak would grow.
type usage struct {
	Goroutines int    `json:"goroutines"`
	FDs        int    `json:"fds"`
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
}

// measure samples goroutines and open files ten times over 200 ms and keeps
// the lowest of each (a keepalive probe or a closing connection caught in
// flight is not a leak), then reads HeapInuse after two collections.
func measureUsage() usage {
	u := usage{Goroutines: 1 << 30, FDs: 1 << 30}
	for i := range 10 {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		u.Goroutines = min(u.Goroutines, runtime.NumGoroutine())
		if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
			u.FDs = min(u.FDs, len(ents))
		}
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.HeapInuse = ms.HeapInuse
	return u
}

// measureSettled measures once earlier tests' goroutines have wound down.
func measureSettled() usage {
	u := measureUsage()
	for range 10 {
		v := measureUsage()
		if v.Goroutines >= u.Goroutines && v.FDs >= u.FDs {
			return u
		}
		u = v
	}
	return u
}

// waitBack waits up to within for goroutines and open files to come back to
// base (allowing one of each for the runtime's and the test framework's own
// lazily started helpers). leaked describes what did not.
func waitBack(base usage, within time.Duration) (u usage, leaked string) {
	deadline := time.Now().Add(within)
	for {
		u = measureUsage()
		if u.Goroutines <= base.Goroutines+1 && u.FDs <= base.FDs+1 {
			return u, ""
		}
		if time.Now().After(deadline) {
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "goroutines %d (before %d), open files %d (before %d)\n", u.Goroutines, base.Goroutines, u.FDs, base.FDs)
	buf := make([]byte, 1<<20)
	b.Write(buf[:runtime.Stack(buf, true)])
	return u, b.String()
}

// writeArtifact writes v as JSON to $FULCRUM_ARTIFACTS/name, or to a
// temporary directory when that is not set, and returns the file's path.
func writeArtifact(t *testing.T, name string, v any) string {
	t.Helper()
	dir := os.Getenv("FULCRUM_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	path := filepath.Join(dir, name)
	if err == nil {
		err = os.WriteFile(path, append(b, '\n'), 0o644)
	}
	if err != nil {
		t.Errorf("writing %s: %v", path, err)
	}
	return path
}

// envDuration reads a duration from the environment, or returns def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 3m", name, s)
	}
	return d
}
