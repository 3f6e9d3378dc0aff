//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// TestChaosKillRestart runs a pool of four real backends behind fulcrum
// (HTTP keepalive every 100 ms, fall 1, rise 1, passive health, retries 3)
// while four clients send GET requests on keep-alive connections and a chaos
// goroutine kills (listener and every connection closed) and restarts random
// backends on their own ports. It never kills the last server that is both
// running and seen up by fulcrum, so at every instant at least one server can
// answer: every request must then succeed, with the body its own request
// asked for. A kill lands between the backend reading a request and writing
// its one-write response, or between requests on a pooled connection; either
// way nothing of the response has reached the client and the GET is
// retried on another server.
//
// One race is inherent: with fall 1 and a 100 ms probe timeout, a starved
// machine can time out the probe of the only running server, and fulcrum,
// obeying its config, then has no server to send to and answers 503. A
// watcher samples every millisecond whether some running server is usable;
// a 503 inside such a gap (give or take 20 ms) is counted apart as
// "excused" and reported, and everything else must be zero.
//
// Afterwards the goroutines and open files of the test process are back at
// their count before fulcrum and the backends started.
func TestChaosKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos runs 8 s; skipped with -short")
	}
	duration := envDuration(t, "CHAOS_DURATION", 8*time.Second)
	base := measureSettled()

	backends := make([]*killable, 4)
	for i := range backends {
		backends[i] = newKillable(t, fmt.Sprintf("s%d", i+1), echoHandler)
	}
	web := freePort(t)
	a, _, stopApp := startInProcess(t, chaosConfig(freePort(t), web, backends))
	r := chaosLoad(t, a.Pools()[0], web, backends, duration)
	for _, b := range backends {
		b.kill()
	}
	stopApp()
	after, leaked := waitBack(base, 5*time.Second)

	file := writeArtifact(t, "chaos.json", map[string]any{
		"test": "chaos", "duration_s": duration.Seconds(), "servers": len(backends), "clients": 4,
		"requests": r.load.Sent, "errors": len(r.unexcused), "kills": r.kills, "restarts": r.restarts,
		"failed_attempts_retried": r.retried, "ms_with_n_running": r.upMillis,
		"ms_no_running_server_usable": r.gapTime.Milliseconds(), "excused_503": len(r.excused),
		"error_samples": firstFailures(r.unexcused), "excused_samples": firstFailures(r.excused),
		"goroutines_before": base.Goroutines, "goroutines_after": after.Goroutines,
		"fds_before": base.FDs, "fds_after": after.FDs,
	})
	t.Logf("chaos: %d requests in %v, %d errors; %d kills, %d restarts, %d failed attempts retried; ms with N backends running %v; "+
		"%v with no running server usable (%d gaps), %d excused 503s; goroutines %d -> %d, fds %d -> %d; figures in %s",
		r.load.Sent, duration, len(r.unexcused), r.kills, r.restarts, r.retried, r.upMillis, r.gapTime, len(r.gaps), len(r.excused),
		base.Goroutines, after.Goroutines, base.FDs, after.FDs, file)
	if len(r.unexcused) != 0 || len(r.excused) != 0 {
		r.explain(t)
	}
	if len(r.unexcused) != 0 {
		t.Fatalf("%d of %d requests failed while a running server was usable, want 0", len(r.unexcused), r.load.Sent)
	}
	if r.kills < 5 || r.load.Sent < 100 {
		t.Fatalf("chaos too tame to prove anything: %d kills, %d requests", r.kills, r.load.Sent)
	}
	if r.gapTime > duration/10 {
		t.Fatalf("no running server was usable for %v of %v: the machine is too starved for 100 ms keepalives to judge fulcrum", r.gapTime, duration)
	}
	if leaked != "" {
		t.Fatalf("after shutdown: %s", leaked)
	}
}

// chaosResult is what one chaos run saw.
type chaosResult struct {
	load               loadResult
	events             *eventLog
	kills, restarts    int
	retried            uint64        // attempts that failed on a server and went to another
	upMillis           map[int]int64 // milliseconds spent with N backends running
	gaps               []gap         // when no running backend was usable
	gapTime            time.Duration // their total
	excused, unexcused []loadFailure // 503s inside a gap; every other failure
}

// chaosLoad runs the load, the chaos and the gap watcher for duration.
func chaosLoad(t *testing.T, p *pool.Pool, web string, backends []*killable, duration time.Duration) *chaosResult {
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	r := &chaosResult{events: &eventLog{start: time.Now()}, upMillis: map[int]int64{}}
	var wg sync.WaitGroup
	var upTime [5]time.Duration
	wg.Add(2)
	go func() {
		defer wg.Done()
		upTime = runChaos(ctx, t, p, backends, r.events)
	}()
	go func() {
		defer wg.Done()
		r.gaps = watchGaps(ctx, r.events.start, p, backends)
	}()
	r.load = runLoad(ctx, web, 4, r.events.start, func() func(*rawClient) error {
		return func(c *rawClient) error {
			_, err := c.echo()
			return err
		}
	})
	wg.Wait()

	r.kills, r.restarts = r.events.count("kill"), r.events.count("restart")
	for _, s := range p.Servers() {
		r.retried += s.Failures()
	}
	for n, d := range upTime {
		if d > 0 {
			r.upMillis[n] = d.Milliseconds()
		}
	}
	for _, g := range r.gaps {
		r.gapTime += g.to - g.from
	}
	for _, f := range r.load.Failures {
		if f.Status == http.StatusServiceUnavailable && inGap(r.gaps, f.At) {
			r.excused = append(r.excused, f)
		} else {
			r.unexcused = append(r.unexcused, f)
		}
	}
	return r
}

// explain logs the failures, the gaps and the chaos events.
func (r *chaosResult) explain(t *testing.T) {
	for _, f := range firstFailures(r.unexcused) {
		t.Logf("failed request: %s", f)
	}
	for _, f := range firstFailures(r.excused) {
		t.Logf("excused 503: %s", f)
	}
	for _, g := range r.gaps {
		t.Logf("no running server usable from +%v to +%v", g.from, g.to)
	}
	t.Logf("chaos events:\n%s", r.events.String())
}

// gap is a time (since the start) when no running backend was usable.
type gap struct{ from, to time.Duration }

// watchGaps samples every millisecond until ctx ends whether some backend
// is running and usable in fulcrum's eyes, and returns the gaps when none
// was. kill marks a backend stopped before closing it, so the watcher never
// counts a dying backend as up.
func watchGaps(ctx context.Context, start time.Time, p *pool.Pool, backends []*killable) []gap {
	servers := map[string]*pool.Server{}
	for _, s := range p.Servers() {
		servers[s.Name()] = s
	}
	var gaps []gap
	open := false
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		up := false
		for _, b := range backends {
			if b.running() && servers[b.name].Usable() {
				up = true
				break
			}
		}
		now := time.Since(start)
		switch {
		case !up && !open:
			gaps, open = append(gaps, gap{from: now, to: now}), true
		case !up:
			gaps[len(gaps)-1].to = now
		case open:
			gaps[len(gaps)-1].to, open = now, false
		}
		select {
		case <-ctx.Done():
			return gaps
		case <-tick.C:
		}
	}
}

// inGap reports whether a failure seen at at lies within 20 ms of a gap. A
// 503 means the request found no usable server when it chose, so a gap was
// real at that moment; the slack covers the watcher's sampling lag on a
// starved machine (it may notice the gap a little after the 503 was sent)
// and the time the 503 took to reach the client.
func inGap(gaps []gap, at time.Duration) bool {
	const slack = 20 * time.Millisecond
	for _, g := range gaps {
		if at >= g.from-slack && at <= g.to+slack {
			return true
		}
	}
	return false
}

func chaosConfig(admin, web string, backends []*killable) string {
	var b strings.Builder
	fmt.Fprintf(&b, `admin: {listen: %s}
log: {access: false}
listeners:
  - {name: web, listen: %s, protocol: http, pool: app}
pools:
  - name: app
    balance: round_robin
    retries: 3
    keepalive:
      type: http
      method: GET
      path: /health
      interval: 100ms
      timeout: 100ms
      fall: 1
      rise: 1
      passive: {fall: 2, within: 1s}
    servers:
`, admin, web)
	for _, s := range backends {
		fmt.Fprintf(&b, "      - {name: %s, address: %s}\n", s.name, s.addr)
	}
	return b.String()
}

// runChaos kills or restarts a random backend every 20 to 200 ms until ctx
// ends. A backend is killed only while another one is running and usable in
// fulcrum's eyes. It returns how long 0..4 backends were running.
func runChaos(ctx context.Context, t *testing.T, p *pool.Pool, backends []*killable, ev *eventLog) (upTime [5]time.Duration) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	servers := map[string]*pool.Server{}
	for _, s := range p.Servers() {
		servers[s.Name()] = s
	}
	tick := time.NewTimer(0)
	defer tick.Stop()
	last := time.Now()
	for {
		running := 0
		for _, b := range backends {
			if b.running() {
				running++
			}
		}
		select {
		case <-ctx.Done():
			upTime[running] += time.Since(last)
			return upTime
		case <-tick.C:
		}
		upTime[running] += time.Since(last)
		last = time.Now()
		tick.Reset(time.Duration(20+rng.IntN(180)) * time.Millisecond)
		b := backends[rng.IntN(len(backends))]
		if !b.running() {
			if err := b.start(); err != nil {
				t.Errorf("restarting %s: %v", b.name, err)
				return upTime
			}
			ev.add("restart", b.name)
			continue
		}
		others := 0
		for _, o := range backends {
			if o != b && o.running() && servers[o.name].Usable() {
				others++
			}
		}
		if others > 0 {
			b.kill()
			ev.add("kill", b.name)
		}
	}
}

// killable is a net/http server that can be killed (its listener and every
// connection closed at once) and started again on the same port. The port is
// picked below the kernel's ephemeral range, so no outgoing connection can
// take it while the backend is down.
type killable struct {
	name, addr string
	handler    func(*killable) http.Handler

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}

	healthy atomic.Bool // what /health answers (see flapHandler)
}

func newKillable(t *testing.T, name string, handler func(*killable) http.Handler) *killable {
	t.Helper()
	b := &killable{name: name, handler: handler}
	b.healthy.Store(true)
	ln := listenStablePort(t)
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.kill)
	return b
}

func listenStablePort(t *testing.T) net.Listener {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for range 200 {
		if low <= 11000 {
			break
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000)))
		if err == nil {
			return ln
		}
	}
	t.Fatalf("no free port below the ephemeral range (starting at %d)", low)
	return nil
}

func (b *killable) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:     b.handler(b),
		IdleTimeout: 500 * time.Millisecond,
		ErrorLog:    log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	b.mu.Lock()
	b.srv, b.done = srv, done
	b.mu.Unlock()
}

// start listens on the backend's port again.
func (b *killable) start() error {
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", b.addr, err)
	}
	b.serve(ln)
	return nil
}

// kill closes the listener and every connection, and waits for Serve to end.
func (b *killable) kill() {
	b.mu.Lock()
	srv, done := b.srv, b.done
	b.srv, b.done = nil, nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
		<-done
	}
}

func (b *killable) running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv != nil
}

// echoHandler answers /health with 200 and anything else with "NAME ID",
// ID being the request's X-Request-Id, in one write after a pause of up to
// a millisecond (so kills find requests in flight).
func echoHandler(b *killable) http.Handler {
	name := b.name
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			io.WriteString(w, "ok")
			return
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
		io.WriteString(w, name+" "+r.Header.Get("X-Request-Id"))
	})
}

// startInProcess runs fulcrum in-process from text. It returns the file's path,
// for reloads, and a stop function that shuts fulcrum down once (it also
// runs at cleanup).
func startInProcess(t *testing.T, text string) (a *app.App, path string, stop func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	a, err = app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fulcrum's log:\n%s", logs.String())
		}
	})
	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	t.Cleanup(stop)
	return a, path, stop
}

// rawClient speaks HTTP/1.1 on one keep-alive connection, with none of
// net/http's Transport behind it: the Transport silently resends an
// idempotent request whose reused connection closed before the response,
// which would hide exactly what these tests look for.
type rawClient struct {
	addr   string
	conn   net.Conn
	br     *bufio.Reader
	reused bool
	buf    []byte
	n      int
}

type rawReply struct {
	status    int
	body      string
	setCookie []*http.Cookie
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// get sends GET path with the extra header lines ("Name: value") and reads
// the response.
func (c *rawClient) get(path string, header ...string) (rawReply, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return rawReply{}, fmt.Errorf("connecting to fulcrum: %w", err)
		}
		c.conn, c.br, c.reused = conn, bufio.NewReader(conn), false
	}
	reused := c.reused
	c.reused = true
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.buf = append(c.buf[:0], "GET "+path+" HTTP/1.1\r\nHost: fulcrum.test\r\n"...)
	for _, h := range header {
		c.buf = append(c.buf, h+"\r\n"...)
	}
	c.buf = append(c.buf, "\r\n"...)
	if _, err := c.conn.Write(c.buf); err != nil {
		c.close()
		return rawReply{}, fmt.Errorf("writing request (reused connection %v): %w", reused, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return rawReply{}, fmt.Errorf("reading response head (reused connection %v): %w", reused, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.close()
		return rawReply{}, fmt.Errorf("reading response body (status %d): %w", resp.StatusCode, err)
	}
	if resp.Close {
		c.close()
	}
	r := rawReply{status: resp.StatusCode, body: string(body), setCookie: resp.Cookies()}
	if r.status != http.StatusOK {
		return r, &statusError{status: r.status, body: r.body}
	}
	return r, nil
}

// echo sends a GET with a fresh request id and checks the body names a
// server and that id: a response meant for another request is an error.
// It returns the server's name.
func (c *rawClient) echo(header ...string) (rawReply, error) {
	c.n++
	id := fmt.Sprintf("%p-%d", c, c.n)
	r, err := c.get("/", append(header, "X-Request-Id: "+id)...)
	if err != nil {
		return r, err
	}
	name, got, _ := strings.Cut(r.body, " ")
	if got != id {
		return r, fmt.Errorf("body %q is not the answer to request %s", r.body, id)
	}
	r.body = name
	return r, nil
}

// eventLog records what the chaos or soak drivers did, for the failure report.
type eventLog struct {
	start time.Time
	mu    sync.Mutex
	ev    []string
	n     map[string]int
}

func (e *eventLog) add(what, detail string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[what]++
	e.ev = append(e.ev, fmt.Sprintf("+%v %s %s", time.Since(e.start).Round(time.Millisecond), what, detail))
}

func (e *eventLog) count(what string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[what]
}

func (e *eventLog) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.ev, "\n")
}
