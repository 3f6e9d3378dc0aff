//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

// chromiumPath is Debian's chromium; playwright's own browser download is
// never used (scripts/browser.sh installs the package).
const chromiumPath = "/usr/bin/chromium"

// TestBrowserCORSAndWebSocket loads one page from two origins through
// fulcrum in headless Chromium and asserts what the page saw:
//
//   - from origin A (allowed by the CORS policy of origin B's /api/ route),
//     credentialed fetch and XHR calls to origin B succeed, including the
//     preflighted ones, and the cookie B sets comes back to B;
//   - from origin C (not allowed), the browser blocks every call, and the
//     preflights fulcrum refused never reached the API server;
//   - a WebSocket from origin A echoes text and binary messages and closes
//     cleanly.
//
// All three origins are 127.0.0.1 on different ports: different origins, but
// the same site, so B's SameSite=Lax cookie is a first-party cookie that
// Chromium sends on the page's credentialed calls.
func TestBrowserCORSAndWebSocket(t *testing.T) {
	node := browserTools(t)
	api := newAPIBackend(t)
	wsAddr, wsClosed := wsEchoBackend(t)
	f := startFulcrum(t, newPageServer(t), api.addr, wsAddr)
	originA, originB, originC := "http://"+f.a, "http://"+f.b, "http://"+f.c

	shots := artifactsDir(t, "browser")
	plan := map[string]any{"pages": []map[string]string{
		{"name": "allowed", "url": originA + "/", "api": originB + "/api/", "ws": "ws://" + f.a + "/ws"},
		{"name": "denied", "url": originC + "/", "api": originB + "/api/"},
	}}
	run := runBrowser(t, node, plan, shots)
	t.Logf("Chromium %s; screenshots and result.json in %s", run.Browser, shots)

	allowed, ok := run.Pages["allowed"]
	if !ok {
		t.Fatalf("no result for the allowed page: %+v", run)
	}
	checkAllowed(t, allowed, originA, api.cookies())
	checkWebSocket(t, allowed.Result.WS, wsClosed)
	denied, ok := run.Pages["denied"]
	if !ok {
		t.Fatalf("no result for the denied page: %+v", run)
	}
	checkDenied(t, denied, originB)
	checkAPIServerSaw(t, api.requests(), originA, originC)
	checkFulcrumAnswered(t, f)
}

// browserTools returns the node binary, or fails (CI) or skips (elsewhere)
// naming what is missing.
func browserTools(t *testing.T) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath+" (Debian package chromium)")
	}
	if _, err := os.Stat("browser/node_modules/playwright-core/package.json"); err != nil {
		missing = append(missing, "e2e/browser/node_modules (npm ci)")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the browser test needs %s: run `bash scripts/browser.sh` (or `make browser-deps`)", strings.Join(missing, ", "))
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (skipped because CI is not set)")
	}
	return node
}

// artifactsDir is where a test's files (screenshots, reports) go:
// $FULCRUM_ARTIFACTS/name when set (kept after the test), else a temporary
// directory.
func artifactsDir(t *testing.T, name string) string {
	t.Helper()
	root := os.Getenv("FULCRUM_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(filepath.Join(root, name))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// fulcrum is a running fulcrum with three HTTP listeners: a and c serve the
// page (origins A and C), b the API (origin B); a also routes /ws to the
// WebSocket echo.
type fulcrum struct {
	a, b, c string

	mu      sync.Mutex
	records []httpproxy.AccessRecord
}

func (f *fulcrum) access() []httpproxy.AccessRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]httpproxy.AccessRecord(nil), f.records...)
}

const fulcrumConfig = `admin: {listen: %[1]s}
listeners:
  - name: a
    listen: %[2]s
    protocol: http
    routes:
      - path: /ws
        pool: ws
      - pool: pages
  - name: b
    listen: %[3]s
    protocol: http
    routes:
      - path_prefix: /api/
        pool: api
        cors:
          allow_origins: ["http://%[2]s"]
          allow_methods: [GET, POST, PUT]
          allow_headers: [Content-Type, X-Fulcrum-Test]
          expose_headers: [X-Request-Id]
          allow_credentials: true
          max_age: 10m
  - name: c
    listen: %[4]s
    protocol: http
    pool: pages
pools:
  - name: pages
    keepalive: {type: none}
    servers: [{name: page1, address: %[5]q}]
  - name: api
    keepalive: {type: none}
    servers: [{name: api1, address: %[6]q}]
  - name: ws
    keepalive: {type: none}
    servers: [{name: ws1, address: %[7]q}]
`

func startFulcrum(t *testing.T, pages, api, ws string) *fulcrum {
	t.Helper()
	f := &fulcrum{a: freePort(t), b: freePort(t), c: freePort(t)}
	path := filepath.Join(t.TempDir(), "fulcrum.yaml")
	text := fmt.Sprintf(fulcrumConfig, freePort(t), f.a, f.b, f.c, pages, api, ws)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var logs syncBuffer
	a, err := app.New(context.Background(), cfg, app.Options{
		ConfigPath: path,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		Access: func(r *httpproxy.AccessRecord) {
			f.mu.Lock()
			f.records = append(f.records, *r)
			f.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		if t.Failed() {
			t.Logf("fulcrum's log:\n%s", logs.String())
			for _, r := range f.access() {
				t.Logf("access: %s %s %s %s -> %s/%s %d %v", r.Listener, r.Method, r.Host, r.Path, r.Pool, r.Server, r.Status, r.Err)
			}
		}
	})
	return f
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

// syncBuffer is a bytes.Buffer for a logger written from many goroutines.
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

// runBrowser runs browser/run.mjs with plan and decodes what it printed.
func runBrowser(t *testing.T, node string, plan any, shots string) *browserRun {
	t.Helper()
	var run browserRun
	runNodeScript(t, node, "browser/run.mjs", plan, shots, 60*time.Second, &run)
	return &run
}

// runNodeScript runs a browser script with a JSON plan, saves and decodes
// the JSON it prints into out. Chromium runs in node's process group, which
// is killed on timeout and after the run, so no browser outlives the test.
func runNodeScript(t *testing.T, node, script string, plan any, shots string, timeout time.Duration, out any) {
	t.Helper()
	planJSON, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script,
		"--chromium", chromiumPath, "--profile", t.TempDir(), "--screenshots", shots,
		"--timeout-ms", fmt.Sprint((timeout * 2 / 3).Milliseconds()), "--plan", string(planJSON))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers, if any
	}
	t.Logf("%s took %v", script, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s\nstdout:\n%s", script, err, stderr.String(), stdout.String())
	}
	if shots != "" {
		if err := os.WriteFile(filepath.Join(shots, "result.json"), stdout.Bytes(), 0o644); err != nil {
			t.Errorf("saving the browser's result: %v", err)
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("decoding %s output: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 && (t.Failed() || testing.Verbose()) {
		t.Logf("%s stderr:\n%s", script, stderr.String())
	}
}

// checkWebSocket: every message came back unchanged, the page saw a clean
// close with 1000, and so did the echo server behind fulcrum.
func checkWebSocket(t *testing.T, ws *stepResult, closed chan websocket.StatusCode) {
	t.Helper()
	if ws == nil || !ws.OK {
		t.Fatalf("WebSocket from the page: %+v, want echoes", ws)
	}
	kinds := map[string]int{}
	for i, e := range ws.Echoes {
		kinds[e.Kind]++
		if !e.Same {
			t.Errorf("WebSocket message %d (%s, %d bytes) came back changed", i, e.Kind, e.Bytes)
		}
	}
	if len(ws.Echoes) != 5 || kinds["text"] != 3 || kinds["binary"] != 2 {
		t.Errorf("WebSocket echoes %+v, want 3 text and 2 binary", ws.Echoes)
	}
	if c := ws.Close; c == nil || c.Code != 1000 || !c.WasClean {
		t.Errorf("the page saw the WebSocket close as %+v, want clean with code 1000", c)
	}
	select {
	case got := <-closed:
		if got != websocket.StatusNormalClosure {
			t.Errorf("echo server saw close status %v, want %v", got, websocket.StatusNormalClosure)
		}
	case <-time.After(5 * time.Second):
		t.Error("echo server never saw the WebSocket close")
	}
}
