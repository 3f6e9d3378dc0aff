package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func named(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	}))
}

type fixture struct {
	path  string
	app   *app.App
	web   string
	admin string
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, text string) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fulcrum.yaml")
	writeConfig(t, path, text)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	f := &fixture{path: path, app: a, admin: a.AdminAddr().String()}
	if addr := a.ListenerAddr("web"); addr != nil {
		f.web = addr.String()
	}
	return f
}

func configText(web, admin string, servers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %s}\nlog: {access: false}\nlisteners:\n  - name: web\n    listen: %s\n    protocol: http\n    routes:\n      - pool: app\npools:\n  - name: app\n    balance: round_robin\n    keepalive: {type: none}\n    servers:\n", admin, web)
	for i, s := range servers {
		fmt.Fprintf(&b, "      - {name: s%d, address: %q}\n", i, s)
	}
	return b.String()
}

func body(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReloadDropsNoRequest(t *testing.T) {
	a, b := named("a"), named("b")
	defer a.Close()
	defer b.Close()
	web, admin := freePort(t), freePort(t)
	f := start(t, configText(web, admin, a.Listener.Addr().String()))

	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + web + "/")
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("request failed during reloads: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("status %d during reloads", resp.StatusCode)
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		servers := []string{a.Listener.Addr().String()}
		if i%2 == 0 {
			servers = append(servers, b.Listener.Addr().String())
		}
		writeConfig(t, f.path, configText(web, admin, servers...))
		if err := f.app.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if sent.Load() < 20 || failed.Load() != 0 {
		t.Fatalf("sent %d requests across 20 reloads, %d failed", sent.Load(), failed.Load())
	}
}

func TestReloadKeepsServerStateAndRefusesBadConfig(t *testing.T) {
	a := named("a")
	defer a.Close()
	web, admin := freePort(t), freePort(t)
	f := start(t, configText(web, admin, a.Listener.Addr().String()))
	for i := 0; i < 3; i++ {
		if code, _ := body(t, "http://"+web+"/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	before := f.app.Pools()[0].Servers()[0]
	// Drain the server through the admin API, then reload: state and
	// counters survive.
	resp, err := http.Post("http://"+admin+"/api/v1/pools/app/servers/s0/drain", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("drain: %v %v", err, resp)
	}
	resp.Body.Close()
	if err := f.app.Reload(); err != nil {
		t.Fatal(err)
	}
	after := f.app.Pools()[0].Servers()[0]
	// A request is counted once its response is written: the client may
	// see the response a moment before.
	deadline := time.Now().Add(5 * time.Second)
	for after.Requests() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after != before || after.Requests() != 3 || after.State() != "draining" {
		t.Fatalf("after reload: same=%v requests=%d state=%s, want same server, 3, draining", after == before, after.Requests(), after.State())
	}
	// An invalid file is refused with file:line:col errors, and the old
	// config keeps serving.
	writeConfig(t, f.path, configText(web, admin, a.Listener.Addr().String())+"    balance: nope\n")
	err = f.app.Reload()
	if err == nil || !strings.Contains(err.Error(), "fulcrum.yaml:") {
		t.Fatalf("bad reload: err = %v, want file:line:col errors", err)
	}
	resp, err = http.Post("http://"+admin+"/api/v1/reload", "", nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("POST /api/v1/reload with a bad file: %v %v, want 400", err, resp.Status)
	}
	resp.Body.Close()
	resp, err = http.Post("http://"+admin+"/api/v1/pools/app/servers/s0/enable", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, got := body(t, "http://"+web+"/"); code != 200 || got != "a" {
		t.Fatalf("after refused reload: %d %q", code, got)
	}
}

// echoServer starts a TCP server that echoes each connection until the
// client half-closes, and returns its address.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTCPListenerSplices(t *testing.T) {
	echo := echoServer(t)
	tcp, admin := freePort(t), freePort(t)
	text := fmt.Sprintf("admin: {listen: %s}\nlisteners:\n  - name: db\n    listen: %s\n    protocol: tcp\n    pool: pg\npools:\n  - name: pg\n    balance: least_conn\n    servers: [{name: pg1, address: %q}]\n", admin, tcp, echo)
	start(t, text)
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := strings.Repeat("spliced bytes ", 10000)
	go func() {
		io.WriteString(c, msg)
		c.(*net.TCPConn).CloseWrite() // half-close: the echo must still come back
	}()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Fatalf("echo through TCP listener: %d bytes (%v), want %d", len(got), err, len(msg))
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "finished")
	}))
	defer slow.Close()
	web, admin := freePort(t), freePort(t)
	path := filepath.Join(t.TempDir(), "f.yaml")
	writeConfig(t, path, configText(web, admin, slow.Listener.Addr().String()))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + web + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	for a.Pools()[0].Servers()[0].Active() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(context.Background()) }()
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", web, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if g := <-got; g != "finished" {
		t.Fatalf("in-flight request got %q", g)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestReloadKeepsOpenTunnels: a TCP connection open through an unchanged
// listener and pool goes on across a reload.
func TestReloadKeepsOpenTunnels(t *testing.T) {
	echo := echoServer(t)
	tcp, admin := freePort(t), freePort(t)
	text := func(weight int) string {
		return fmt.Sprintf("admin: {listen: %s}\nlisteners:\n  - {name: db, listen: %s, protocol: tcp, pool: pg}\npools:\n  - name: pg\n    balance: least_conn\n    keepalive: {type: none}\n    servers: [{name: pg1, address: %q, weight: %d}]\n", admin, tcp, echo, weight)
	}
	f := start(t, text(1))
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	roundTrip := func(msg string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, buf, err)
		}
	}
	roundTrip("one..")
	for i := 0; i < 3; i++ {
		writeConfig(t, f.path, text(2+i))
		if err := f.app.Reload(); err != nil {
			t.Fatal(err)
		}
		roundTrip(fmt.Sprintf("two.%d", i))
	}
}
