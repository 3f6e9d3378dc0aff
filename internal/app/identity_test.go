package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

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
