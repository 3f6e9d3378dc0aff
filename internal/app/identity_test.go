package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/pires/go-proxyproto"
)

// TestIdentityEndToEnd: a PROXY header from a trusted load balancer in front
// sets the client; a PROXY v2 header tells the server; a CORS preflight is
// answered at the edge.
func TestIdentityEndToEnd(t *testing.T) {
	sources := make(chan string, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				h, err := proxyproto.Read(br)
				if err != nil {
					sources <- "no PROXY header: " + err.Error()
					return
				}
				sources <- h.SourceAddr.String()
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	web, admin := freePort(t), freePort(t)
	start(t, fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - name: web
    listen: %s
    protocol: http
    accept_proxy: true
    trusted_proxies: [127.0.0.0/8]
    routes:
      - path_prefix: /api/
        pool: app
        cors:
          allow_origins: ["https://app.example.com"]
          allow_methods: [PUT]
          allow_credentials: true
      - pool: app
pools:
  - name: app
    client_ip: proxy_v2
    keepalive: {type: none}
    servers: [{name: a, address: %q}]
`, admin, web, ln.Addr().String()))

	c, err := net.Dial("tcp", web)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr, _ := proxyproto.HeaderProxyFromAddrs(1, &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 51000}, &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 80}).Format()
	c.Write(hdr)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request through PROXY header: %v %v", err, resp)
	}
	io.ReadAll(resp.Body)
	if got := <-sources; got != "203.0.113.9:51000" {
		t.Fatalf("server's PROXY header names %q, want the client 203.0.113.9:51000", got)
	}
	io.WriteString(c, "OPTIONS /api/x HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: PUT\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("preflight: %v %v", err, resp)
	}
	// Without a PROXY header the trusted-only listener closes the connection.
	c2, _ := net.Dial("tcp", web)
	defer c2.Close()
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if b, _ := io.ReadAll(c2); len(b) != 0 {
		t.Fatalf("a connection without PROXY header was answered: %q", b)
	}
}

func TestAccessRulesFromConfig(t *testing.T) {
	backend := named("app")
	defer backend.Close()
	web, admin := freePort(t), freePort(t)
	start(t, fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - name: web
    listen: %s
    protocol: http
    access:
      - {action: deny, methods: [TRACE]}
    routes:
      - path_prefix: /internal/
        pool: app
        access:
          - {action: allow, cidr: [10.0.0.0/8]}
          - {action: deny}
      - pool: app
pools:
  - name: app
    keepalive: {type: none}
    servers: [{name: a, address: %q}]
`, admin, web, backend.Listener.Addr().String()))
	for path, want := range map[string]int{"/": 200, "/internal/x": 403} {
		if code, _ := body(t, "http://"+web+path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	req, _ := http.NewRequest("TRACE", "http://"+web+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("TRACE: %d, want 403", resp.StatusCode)
	}
}

func TestTraceEndpoint(t *testing.T) {
	backend := named("app")
	defer backend.Close()
	web, admin := freePort(t), freePort(t)
	start(t, fmt.Sprintf("admin: {listen: %s}\nlog: {access: false}\nlisteners:\n  - {name: web, listen: %s, protocol: http, routes: [{path_prefix: /api/, pool: app}]}\npools:\n  - name: app\n    keepalive: {type: none}\n    servers: [{name: a, address: %q}]\n", admin, web, backend.Listener.Addr().String()))
	code, got := body(t, "http://"+admin+"/api/v1/trace?client=203.0.113.5&host=shop.example&path=/api/items")
	if code != 200 || !strings.Contains(got, `"server":"a"`) || !strings.Contains(got, `"client":"203.0.113.5"`) || !strings.Contains(got, `"pool":"app"`) {
		t.Fatalf("trace: %d %s", code, got)
	}
	if code, got := body(t, "http://"+admin+"/api/v1/trace?client=203.0.113.5&path=/other"); code != 200 || !strings.Contains(got, "no route") {
		t.Fatalf("trace of an unrouted path: %d %s", code, got)
	}
	if code, _ := body(t, "http://"+admin+"/api/v1/trace?client=nonsense"); code != 400 {
		t.Fatalf("bad client: %d, want 400", code)
	}
}

// wildcardPort returns a port that is free on every local address.
func wildcardPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// TestExposedServicesNeedTokens: the admin API and the state service refuse
// to start on a non-loopback address without a token, and with one they
// refuse requests that do not carry it.
func TestExposedServicesNeedTokens(t *testing.T) {
	backend := named("a")
	defer backend.Close()
	p := wildcardPort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.yaml")
	writeConfig(t, path, fmt.Sprintf("admin: {listen: '0.0.0.0:%s'}\nlisteners: [{name: web, listen: %s, protocol: http, pool: app}]\npools: [{name: app, keepalive: {type: none}, servers: [{name: a, address: %q}]}]\n", p, freePort(t), backend.Listener.Addr().String()))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("admin on 0.0.0.0 without a token: %v, want a refusal naming token_file", err)
	}

	// A port free on every address now: the first one may have been taken
	// meanwhile (it is from the ephemeral range, and was only refused).
	p = wildcardPort(t)
	token := filepath.Join(dir, "admin.token")
	os.WriteFile(token, []byte("s3cret-token-value\n"), 0o600)
	writeConfig(t, path, fmt.Sprintf("admin: {listen: '0.0.0.0:%s', token_file: %s}\nlisteners: [{name: web, listen: %s, protocol: http, pool: app}]\npools: [{name: app, keepalive: {type: none}, servers: [{name: a, address: %q}]}]\n", p, token, freePort(t), backend.Listener.Addr().String()))
	cfg, err = config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if code, _ := body(t, "http://127.0.0.1:"+p+"/api/v1/pools"); code != http.StatusUnauthorized {
		t.Fatalf("admin without the token: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+p+"/api/v1/pools", nil)
	req.Header.Set("Authorization", "Bearer s3cret-token-value")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin with the token: %d, want 200", resp.StatusCode)
	}

	// The state service: a non-loopback listen without token_file is a
	// config error.
	_, err = config.Parse("s.yaml", []byte("state:\n  listen: 0.0.0.0:9100\n  store: {type: memory}\n"))
	if err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("state on 0.0.0.0 without a token: %v, want an error naming token_file", err)
	}
}

func TestRateLimits(t *testing.T) {
	backend := named("app")
	defer backend.Close()
	web, admin := freePort(t), freePort(t)
	start(t, fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - name: web
    listen: %s
    protocol: http
    rate_limit: {requests: 1000, per: 1s, connections: 2}
    routes:
      - path_prefix: /login
        pool: app
        rate_limit: {requests: 3, per: 1m, burst: 2}
      - pool: app
pools:
  - name: app
    keepalive: {type: none}
    servers: [{name: a, address: %q}]
`, admin, web, backend.Listener.Addr().String()))
	// The login route allows the burst (2) plus one, then 429 with a
	// Retry-After of about a minute's share.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	var codes []int
	var retry string
	for i := 0; i < 5; i++ {
		resp, err := client.Get("http://" + web + "/login")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" || retry == "" {
		t.Fatalf("login codes %v (Retry-After %q), want three 200s then 429s with Retry-After", codes, retry)
	}
	// Other paths are not held to the login rate.
	if code, _ := body(t, "http://"+web+"/"); code != 200 {
		t.Fatalf("GET / after the login limit: %d", code)
	}
	// A third open connection from the same address is refused. First the
	// clients above let go of their idle connections, and fulcrum sees them
	// close.
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 2; {
		c, err := net.Dial("tcp", web)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && resp.StatusCode == 200 {
			defer c.Close()
			i++
			continue
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("connection %d: %v %v", i, err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := net.Dial("tcp", web)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 429 {
		t.Fatalf("third connection: %v %v, want 429", err, resp)
	}
}
