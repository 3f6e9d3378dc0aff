package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fulcrum-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "fulcrum")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
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

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "fulcrum ") {
		t.Fatalf("version: code %d out %q", code, out.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d err %q", code, errb.String())
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    protocol: http\n    pool: app\npools:\n  - name: app\n    servers: [{name: a, address: 127.0.0.1:9001}]\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    protocol: http\n    pool: nope\npools:\n  - name: app\n    balance: fastest\n    servers: [{name: a, address: 127.0.0.1:9001}]\n"), 0o644)

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check", "-c", good}, &out, &errb); code != 0 {
		t.Fatalf("check good: code %d, stderr %s", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"check", "--config", bad}, &out, &errb); code != 1 {
		t.Fatalf("check bad: code %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("check bad printed %d lines, want 2 (every mistake):\n%s", len(lines), errb.String())
	}
	for i, want := range []string{bad + ":5:11: listeners[0].pool:", bad + ":8:14: pools[0].balance:"} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
}

// TestRunReloadAndStop runs the real binary: it serves, reloads on SIGHUP
// (a bad file is refused and the old config keeps serving), and exits 0 on
// SIGTERM.
func TestRunReloadAndStop(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "a") }))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "b") }))
	defer b.Close()
	web, admin := freePort(t), freePort(t)
	cfg := func(server string) string {
		return fmt.Sprintf("admin: {listen: %s}\nlisteners:\n  - name: web\n    listen: %s\n    protocol: http\n    pool: app\npools:\n  - name: app\n    keepalive: {type: none}\n    servers: [{name: s, address: %q}]\n", admin, web, server)
	}
	path := filepath.Join(t.TempDir(), "fulcrum.yaml")
	os.WriteFile(path, []byte(cfg(a.Listener.Addr().String())), 0o644)
	cmd := exec.Command(binary, "run", "-c", path)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "fulcrum serving", func() bool { return fetch(web) == "a" })

	os.WriteFile(path, []byte(cfg(b.Listener.Addr().String())), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload to take effect", func() bool { return fetch(web) == "b" })

	os.WriteFile(path, []byte("pools: [\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "refusal to be logged", func() bool { return strings.Contains(logs.String(), "reload refused") })
	if got := fetch(web); got != "b" {
		t.Fatalf("after a refused reload got %q, want b", got)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
}

func TestDemo(t *testing.T) {
	web, admin, stateAddr := freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(binary, "demo", "--listen", web, "--admin", admin, "--state", stateAddr)
	stdout, _ := cmd.StdoutPipe()
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var banner strings.Builder
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if !strings.Contains(banner.String(), "http://"+web+"/") {
		t.Fatalf("demo banner does not show the balancer URL:\n%s", banner.String())
	}
	seen := map[string]bool{}
	waitFor(t, "all three sample servers to answer", func() bool {
		if s := fetch(web); strings.HasPrefix(s, "Hello from ") {
			seen[strings.Fields(s)[2]] = true
		}
		return len(seen) == 3
	})
	waitFor(t, "access log to name the server", func() bool { return strings.Contains(logs.String(), "server=app-") })
	checkDemoSession(t, web)
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exit: %v", err)
	}
}

// checkDemoSession: with a cookie jar the session's visit counter counts 1
// then 2 on the sticky route (one server), and goes on counting on /roam/,
// where round robin moves the client between servers.
func checkDemoSession(t *testing.T, web string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	visit := func(path string) (server, visits string) {
		t.Helper()
		resp, err := c.Get("http://" + web + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return resp.Header.Get("X-Served-By"), resp.Header.Get("X-Session-Visits")
	}
	s1, v1 := visit("/")
	s2, v2 := visit("/")
	if v1 != "1" || v2 != "2" {
		t.Errorf("visit counter with a cookie jar: %s then %s, want 1 then 2", v1, v2)
	}
	if s1 != s2 {
		t.Errorf("cookie persistence: first on %s, then on %s; want the same server", s1, s2)
	}
	servers := map[string]bool{}
	for want := 3; want <= 5; want++ {
		s, v := visit("/roam/")
		servers[s] = true
		if v != strconv.Itoa(want) {
			t.Errorf("visit counter on /roam/ = %s, want %d", v, want)
		}
	}
	if len(servers) < 2 {
		t.Errorf("/roam/ stayed on %v; want round robin across servers", servers)
	}
}

func fetch(addr string) string {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// TestDemoChaos: with --chaos the demo breaks a sample server and the
// keepalives take it out of service, as the admin API shows.
func TestDemoChaos(t *testing.T) {
	web, admin, stateAddr := freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(binary, "demo", "--listen", web, "--admin", admin, "--state", stateAddr, "--chaos", "--chaos-every", "4s")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	broken := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "chaos: "); ok && strings.Contains(rest, " is now down") {
				select {
				case broken <- strings.Fields(rest)[0]:
				default:
				}
			}
		}
	}()
	var name string
	select {
	case name = <-broken:
	case <-time.After(20 * time.Second):
		t.Fatal("no chaos announced")
	}
	waitFor(t, name+" to leave service", func() bool {
		resp, err := http.Get("http://" + admin + "/api/v1/pools/app")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		s := string(b)
		i := strings.Index(s, `"name":"`+name+`"`)
		return i >= 0 && (strings.Contains(s[i:min(len(s), i+300)], `"state":"down"`) || strings.Contains(s[i:min(len(s), i+300)], `"state":"dying"`))
	})
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exit: %v", err)
	}
}
