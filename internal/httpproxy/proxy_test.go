package httpproxy_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/internal/route"
)

// proxyFixture runs a Handler on a loopback listener in front of servers.
type proxyFixture struct {
	addr    string
	handler *httpproxy.Handler
	target  *httpproxy.Target
	servers []*pool.Server
	logs    chan *httpproxy.AccessRecord
}

type fixtureOpts struct {
	balance         string
	responseTimeout time.Duration
	retries         int
	maxBody         int64
	maxHeader       int
	clientIP        httpproxy.ClientIP
	cors            *httpproxy.CORS
	persist         *httpproxy.Persistence
	access          []httpproxy.AccessRule
	noAccessLog     bool
	trusted         []netip.Prefix
	clientIdle      time.Duration // default 5s
	tunnelIdle      time.Duration // default 5s
	async           bool          // serve with ServeConnAsync: idle connections park
}

func startProxy(t testing.TB, o fixtureOpts, addrs ...string) *proxyFixture {
	t.Helper()
	return startProxyOn(t, "127.0.0.1:0", o, addrs...)
}

// startProxyOn is startProxy listening on listen.
func startProxyOn(t testing.TB, listen string, o fixtureOpts, addrs ...string) *proxyFixture {
	t.Helper()
	if o.balance == "" {
		o.balance = "round_robin"
	}
	if o.responseTimeout == 0 {
		o.responseTimeout = 5 * time.Second
	}
	if o.maxHeader == 0 {
		o.maxHeader = 32 << 10
	}
	f := &proxyFixture{logs: make(chan *httpproxy.AccessRecord, 1000)}
	var cands []balance.Candidate
	for i, a := range addrs {
		s := pool.NewServer(fmt.Sprintf("s%d", i), a, 1)
		f.servers = append(f.servers, s)
		cands = append(cands, s)
	}
	p := pool.New("app", o.balance, f.servers)
	picker, err := balance.New(o.balance, cands)
	if err != nil {
		t.Fatal(err)
	}
	f.target = &httpproxy.Target{Pool: p, Picker: picker, ConnectTimeout: time.Second, ResponseTimeout: o.responseTimeout, Retries: o.retries, ClientIP: o.clientIP}
	if o.persist != nil {
		o.persist.Pool = "app"
		o.persist.Index(f.servers)
		f.target.Persist = o.persist
	}
	for _, s := range f.servers {
		up := httpproxy.NewUpstream(s, httpproxy.UpstreamOptions{MaxIdle: 16, IdleTimeout: time.Minute})
		f.target.Upstreams = append(f.target.Upstreams, up)
		t.Cleanup(up.Close)
	}
	table, err := route.New([]route.Rule{{Target: 0}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &httpproxy.Config{
		Listener: "web", Routes: table, RouteNames: []string{"default"}, Targets: []*httpproxy.Target{f.target},
		ClientHeader: 2 * time.Second, ClientIdle: cmp.Or(o.clientIdle, 5*time.Second), ClientBody: 5 * time.Second, TunnelIdle: cmp.Or(o.tunnelIdle, 5*time.Second),
		MaxHeaderBytes: o.maxHeader, MaxBody: o.maxBody, TrustedProxies: o.trusted,
	}
	cfg.Access = o.access
	if o.cors != nil {
		o.cors.Prepare()
		cfg.CORS = []*httpproxy.CORS{o.cors}
	}
	accessLog := func(r *httpproxy.AccessRecord) {
		select {
		case f.logs <- r:
		default:
		}
	}
	if o.noAccessLog {
		accessLog = nil
	}
	f.handler = httpproxy.NewHandler(cfg, slog.New(slog.DiscardHandler), accessLog)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			if o.async {
				go f.handler.ServeConnAsync(c, wg.Done)
				continue
			}
			go func() { defer wg.Done(); f.handler.ServeConn(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f.handler.Shutdown(ctx)
		wg.Wait()
	})
	return f
}

// rawBackend serves each connection with fn, and counts connections.
type rawBackend struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func startRaw(t testing.TB, fn func(c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

// readRequest reads one request head from br, returning it and its body.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func get(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func TestForwardHeaders(t *testing.T) {
	var seen atomic.Pointer[http.Request]
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r)
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		fmt.Fprint(w, "hello")
	}))
	defer backend.Close()
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())

	req, _ := http.NewRequest("GET", "http://"+f.addr+"/a/b?c=d", nil)
	req.Host = "shop.example.com"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "drop me")
	req.Header.Set("X-Keep", "keep me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q, want 200 hello", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response fields reached the client: %v", resp.Header)
	}
	r := seen.Load()
	checks := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "shop.example.com",
		"Forwarded":         `for=127.0.0.1;host="shop.example.com";proto=http`,
		"X-Keep":            "keep me",
		"X-Hop":             "",
	}
	for k, want := range checks {
		if got := r.Header.Get(k); got != want {
			t.Errorf("server saw %s = %q, want %q", k, got, want)
		}
	}
	if r.Host != "shop.example.com" || r.URL.RequestURI() != "/a/b?c=d" {
		t.Errorf("server saw host %q uri %q", r.Host, r.URL.RequestURI())
	}
	rec := <-f.logs
	if rec.Status != 200 || rec.Server != "s0" || rec.Pool != "app" || rec.Path != "/a/b?c=d" || rec.Client != "127.0.0.1" {
		t.Errorf("access record = %+v", rec)
	}
}

func TestKeepAliveReusesServerConnections(t *testing.T) {
	b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	f := startProxy(t, fixtureOpts{}, b.addr())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := 0; i < 50; i++ {
		if _, body := get(t, client, "http://"+f.addr+"/"); body != "ok" {
			t.Fatalf("request %d: body %q", i, body)
		}
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("server saw %d connections for 50 sequential requests, want 1", n)
	}
}

func TestTolerantServerResponses(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		want  string
	}{
		{"lf only", "HTTP/1.1 200 OK\nContent-Length: 5\nX-A: b\n\nhello", "hello"},
		{"http10 read to close", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", "until the end"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: x\r\n\r\n", "hello world"},
		{"chunked lf only", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n", "hello"},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				if _, _, err := readRequest(br); err != nil {
					return
				}
				// Split the reply right after the first line end, as
				// ColdFusion did.
				i := strings.IndexByte(tt.reply, '\n') + 1
				io.WriteString(c, tt.reply[:i])
				time.Sleep(20 * time.Millisecond)
				io.WriteString(c, tt.reply[i:])
			})
			f := startProxy(t, fixtureOpts{}, b.addr())
			// Twice on one client connection: re-framing keeps it usable.
			client := &http.Client{Transport: &http.Transport{}}
			for i := 0; i < 2; i++ {
				resp, body := get(t, client, "http://"+f.addr+"/")
				if resp.StatusCode != 200 || body != tt.want {
					t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, tt.want)
				}
			}
		})
	}
}

func TestRequestBodies(t *testing.T) {
	got := make(chan string, 10)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s %d %v %s", r.Method, r.ContentLength, r.TransferEncoding, b)
		fmt.Fprint(w, len(b))
	}))
	defer backend.Close()
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())

	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	send := func(raw string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		for err == nil && resp.StatusCode == 100 {
			resp, err = http.ReadResponse(br, nil) // interim response
		}
		if err != nil {
			t.Fatalf("reading response: %v", err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp
	}
	send("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
	if g := <-got; g != "POST 11 [] hello world" {
		t.Errorf("content-length body: server saw %q", g)
	}
	send("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	if g := <-got; g != "POST -1 [chunked] hello world" {
		t.Errorf("chunked body: server saw %q", g)
	}
	resp := send("POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
	if g := <-got; g != "POST 3 [] abc" || resp.StatusCode != 200 {
		t.Errorf("expect-continue: status %d server saw %q", resp.StatusCode, g)
	}
}

func TestRetryAndErrorMapping(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "live") }))
	defer live.Close()

	t.Run("connect failure goes elsewhere", func(t *testing.T) {
		f := startProxy(t, fixtureOpts{retries: 2}, deadAddr, live.Listener.Addr().String())
		for i := 0; i < 10; i++ {
			resp, err := http.Post("http://"+f.addr+"/", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("POST %d: status %d, want 200 (dial failures are retried for any method)", i, resp.StatusCode)
			}
		}
		if f.servers[0].Failures() == 0 {
			t.Errorf("dead server has no failures counted")
		}
	})
	t.Run("no server 503", func(t *testing.T) {
		f := startProxy(t, fixtureOpts{}, deadAddr)
		resp, body := get(t, http.DefaultClient, "http://"+f.addr+"/")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("got %d (Retry-After %q) %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	})
	t.Run("all down 503", func(t *testing.T) {
		f := startProxy(t, fixtureOpts{}, live.Listener.Addr().String())
		f.servers[0].SetHealth(pool.HealthDown)
		resp, _ := get(t, http.DefaultClient, "http://"+f.addr+"/")
		if resp.StatusCode != 503 {
			t.Fatalf("got %d, want 503", resp.StatusCode)
		}
	})
	t.Run("garbage 502", func(t *testing.T) {
		b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			io.WriteString(c, "SSH-2.0-OpenSSH\r\n\r\n")
		})
		f := startProxy(t, fixtureOpts{}, b.addr())
		resp, _ := get(t, http.DefaultClient, "http://"+f.addr+"/")
		if resp.StatusCode != 502 {
			t.Fatalf("got %d, want 502", resp.StatusCode)
		}
	})
	t.Run("stall 504", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			<-release
		})
		f := startProxy(t, fixtureOpts{responseTimeout: 200 * time.Millisecond}, b.addr())
		resp, _ := get(t, http.DefaultClient, "http://"+f.addr+"/")
		if resp.StatusCode != 504 {
			t.Fatalf("got %d, want 504", resp.StatusCode)
		}
	})
	t.Run("reset after request retried for GET", func(t *testing.T) {
		var n atomic.Int64
		b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			if n.Add(1) == 1 {
				c.(*net.TCPConn).SetLinger(0)
				return // reset, no answer
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		})
		f := startProxy(t, fixtureOpts{retries: 2}, b.addr())
		resp, body := get(t, http.DefaultClient, "http://"+f.addr+"/")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q, want the retry to succeed", resp.StatusCode, body)
		}
	})
	t.Run("reset after POST is not retried", func(t *testing.T) {
		var n atomic.Int64
		b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
			readRequest(br)
			n.Add(1)
			c.(*net.TCPConn).SetLinger(0)
		})
		f := startProxy(t, fixtureOpts{retries: 2}, b.addr())
		resp, err := http.Post("http://"+f.addr+"/", "text/plain", strings.NewReader("pay once"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 || n.Load() != 1 {
			t.Fatalf("got %d after %d sends, want 502 after exactly 1", resp.StatusCode, n.Load())
		}
	})
}

func TestSmugglingRefusedNotForwarded(t *testing.T) {
	var seen atomic.Int64
	b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			seen.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	f := startProxy(t, fixtureOpts{maxHeader: 4096}, b.addr())
	attacks := []struct {
		raw    string
		status int
	}{
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", 431},
	}
	for i, a := range attacks {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, a.raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("attack %d: %v", i, err)
		}
		rest, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != a.status && !(a.status == 400 && resp.StatusCode == 400) {
			t.Errorf("attack %d: status %d, want %d", i, resp.StatusCode, a.status)
		}
		if resp.StatusCode == 200 {
			t.Errorf("attack %d forwarded: %q", i, rest)
		}
	}
	// Bodies with bad chunks reach the server head-first (the head was
	// valid); nothing after the bad chunk may become a second request.
	if n := seen.Load(); n > 2 {
		t.Errorf("server answered %d requests, want at most the 2 with valid heads", n)
	}
}

func TestWebSocketEcho(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	defer backend.Close()
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial through proxy: %v", err)
	}
	defer c.CloseNow()
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*500))
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %q", got[:min(len(got), 40)])
		}
	}
	c.Close(websocket.StatusNormalClosure, "bye")
}

func TestLargeBodyStreams(t *testing.T) {
	const size = 8 << 20
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		buf := make([]byte, 64<<10)
		for i := 0; i < size/len(buf); i++ {
			w.Write(buf)
		}
	}))
	defer backend.Close()
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	resp, err := http.Get("http://" + f.addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
	}
	resp, err = http.Post("http://"+f.addr+"/up", "application/octet-stream", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != fmt.Sprint(size) {
		t.Fatalf("server received %s bytes, want %d", b, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestHeadAndNoBodyResponses(t *testing.T) {
	b := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			if req.Method == "HEAD" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
				continue
			}
			io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n")
		}
	})
	f := startProxy(t, fixtureOpts{}, b.addr())
	c, _ := net.Dial("tcp", f.addr)
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	r1, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || r1.ContentLength != 1234 {
		t.Fatalf("HEAD: %v, content-length %d, want 1234", err, r1.ContentLength)
	}
	r2, err := http.ReadResponse(br, nil)
	if err != nil || r2.StatusCode != 304 {
		t.Fatalf("pipelined GET after HEAD: %v %v", err, r2)
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		fmt.Fprint(w, "done")
	}))
	defer backend.Close()
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + f.addr + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered // the request is at the server: in flight
	shut := make(chan error, 1)
	go func() { shut <- f.handler.Shutdown(context.Background()) }()
	close(release)
	if g := <-got; g != "done" {
		t.Fatalf("in-flight request got %q, want done", g)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestMaxConnsQueue(t *testing.T) {
	release := make(chan struct{})
	var inside atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside.Add(1)
		<-release
		fmt.Fprint(w, "ok")
	}))
	defer backend.Close()
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	f.target.Upstreams[0].SetOptions(httpproxy.UpstreamOptions{MaxIdle: 4, IdleTimeout: time.Minute, MaxConns: 1, MaxQueue: 1})

	results := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			resp, err := http.Get("http://" + f.addr + "/")
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	// One request is inside the server, the other waits in the queue.
	deadline := time.Now().Add(5 * time.Second)
	for inside.Load() != 1 || f.target.Upstreams[0].Queued() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("inside %d queued %d, want 1 and 1", inside.Load(), f.target.Upstreams[0].Queued())
		}
		time.Sleep(time.Millisecond)
	}
	// A third finds slot and queue full: 503, never reaching the server.
	resp, body := get(t, http.DefaultClient, "http://"+f.addr+"/")
	if resp.StatusCode != 503 {
		t.Fatalf("third request: %d %q, want 503", resp.StatusCode, body)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if s := <-results; s != 200 {
			t.Fatalf("queued request got %d, want 200", s)
		}
	}
	if n := inside.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
}
