package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fulcrum-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "fulcrum")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/fulcrumlb/fulcrum/cmd/fulcrum")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building fulcrum: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const sessionCookie = "ASP.NET_SessionId"

// backends are three application servers keeping server-side sessions:
// /login creates one and sets ASP.NET_SessionId; any other path answers
// "<server> <known|unknown>" for the session the request carries.
type backends struct {
	names []string
	srvs  []*httptest.Server
}

func startBackends(t *testing.T) *backends {
	b := &backends{}
	for _, name := range []string{"app1", "app2", "app3"} {
		var mu sync.Mutex
		sessions := map[string]bool{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/login" {
				id := make([]byte, 12)
				rand.Read(id)
				sid := hex.EncodeToString(id)
				mu.Lock()
				sessions[sid] = true
				mu.Unlock()
				http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", HttpOnly: true})
				fmt.Fprint(w, name)
				return
			}
			known := "unknown"
			if c, err := r.Cookie(sessionCookie); err == nil {
				mu.Lock()
				if sessions[c.Value] {
					known = "known"
				}
				mu.Unlock()
			}
			fmt.Fprintf(w, "%s %s", name, known)
		}))
		t.Cleanup(srv.Close)
		b.names = append(b.names, name)
		b.srvs = append(b.srvs, srv)
	}
	return b
}

func (b *backends) servers() string {
	var buf bytes.Buffer
	for i, s := range b.srvs {
		fmt.Fprintf(&buf, "      - {name: %s, address: %q}\n", b.names[i], s.Listener.Addr().String())
	}
	return buf.String()
}

// lbNode is one fulcrum process and its addresses.
type lbNode struct {
	name, web, admin, cluster string
	dir                       string
	cmd                       *exec.Cmd
	logs                      *syncBuffer
	done                      chan struct{}
}

// configFor writes the node's configuration; clusterYAML is its cluster:
// section.
func (n *lbNode) writeConfig(t *testing.T, keyring string, b *backends, clusterYAML string) string {
	cfg := fmt.Sprintf(`admin: {listen: %s}
keyring: %s
data_dir: %s
log: {level: info}
cluster:
%s
listeners:
  - {name: web, listen: %s, protocol: http, pool: app}
pools:
  - name: app
    balance: round_robin
    keepalive: {type: none}
    persistence: {mode: app_cookie, app_cookie: %s}
    servers:
%s`, n.admin, keyring, filepath.Join(n.dir, "data"), clusterYAML, n.web, sessionCookie, b.servers())
	path := filepath.Join(n.dir, "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (n *lbNode) start(t *testing.T, cfg string) {
	t.Helper()
	n.cmd = exec.Command(binary, "run", "-c", cfg)
	n.logs = &syncBuffer{}
	n.cmd.Stderr = n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	cmd, done := n.cmd, n.done
	go func() { cmd.Wait(); close(done) }()
	logs := n.logs
	t.Cleanup(func() {
		n.kill()
		if strings.Contains(logs.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", n.name, logs.String())
		}
	})
	waitFor(t, 20*time.Second, n.name+" to serve", func() bool {
		select {
		case <-done:
			t.Fatalf("%s exited:\n%s", n.name, n.logs.String())
		default:
		}
		resp, err := http.Get("http://" + n.admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// kill sends SIGKILL: no shutdown, no final snapshot.
func (n *lbNode) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}

func (n *lbNode) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// entries is the size of the node's persistence table.
func (n *lbNode) entries(t *testing.T) int {
	var v struct{ Entries int }
	n.getJSON(t, "/api/v1/pools/app/persistence", &v)
	return v.Entries
}

// clusterStatus is GET /api/v1/cluster.
type clusterStatus struct {
	Node  string
	Mode  string
	Peers []struct {
		Name      string
		Connected bool
		Inbound   bool
		Resyncs   int
		Protocol  int
	}
	Store *struct{ Connected bool }
}

func (n *lbNode) status(t *testing.T) clusterStatus {
	var s clusterStatus
	n.getJSON(t, "/api/v1/cluster", &s)
	return s
}

// clients are browsers: each logs in once and then carries its cookie.
type clients struct {
	http *http.Client
	mu   sync.Mutex
	sid  map[string]string // session id -> server that created it
}

func newClients() *clients {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	return &clients{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, sid: map[string]string{}}
}

// login logs n new clients in through lb, 32 at a time.
func (c *clients) login(t *testing.T, lb *lbNode, n int) {
	t.Helper()
	parallel(t, n, func(int) error {
		resp, err := c.http.Get("http://" + lb.web + "/login")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie {
				c.mu.Lock()
				c.sid[ck.Value] = string(body)
				c.mu.Unlock()
				return nil
			}
		}
		return fmt.Errorf("login through %s: status %d, no session cookie", lb.name, resp.StatusCode)
	})
}

// check sends every client through the given nodes (round robin) and
// returns how many did not reach the server holding their session.
func (c *clients) check(t *testing.T, lbs ...*lbNode) (wrong int) {
	t.Helper()
	c.mu.Lock()
	type client struct{ sid, server string }
	var all []client
	for sid, srv := range c.sid {
		all = append(all, client{sid, srv})
	}
	c.mu.Unlock()
	var mu sync.Mutex
	var example string
	parallel(t, len(all), func(i int) error {
		lb := lbs[i%len(lbs)]
		req, _ := http.NewRequest("GET", "http://"+lb.web+"/cart", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: all[i].sid})
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := all[i].server + " known"; string(body) != want {
			mu.Lock()
			wrong++
			example = fmt.Sprintf("session %s through %s: got %q, want %q", all[i].sid, lb.name, body, want)
			mu.Unlock()
		}
		return nil
	})
	if wrong > 0 {
		t.Logf("e.g. %s", example)
	}
	return wrong
}

func (c *clients) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sid)
}

func (c *clients) anySession() (string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for sid, srv := range c.sid {
		return sid, srv
	}
	return "", ""
}

// parallel runs f(0..n-1), 32 at a time, failing the test on the first
// error.
func parallel(t *testing.T, n int, f func(int) error) {
	t.Helper()
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// keygen writes a new key ring with the real command.
func keygen(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "keys.json")
	if out, err := exec.Command(binary, "keygen", "-o", path).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	return path
}

func newNode(t *testing.T, name string) *lbNode {
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &lbNode{name: name, web: freePort(t), admin: freePort(t), cluster: freePort(t), dir: dir}
}
