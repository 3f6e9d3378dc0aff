package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsEcho starts a WebSocket backend echoing every message; the close status
// it sees arrives on closed.
func wsEcho(t *testing.T) (addr string, closed chan websocket.StatusCode) {
	t.Helper()
	closed = make(chan websocket.StatusCode, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(4 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(backend.Close)
	return backend.Listener.Addr().String(), closed
}

func TestWebSocketEcho(t *testing.T) {
	addr, closed := wsEcho(t)
	pc := poolConf{name: "app", balance: "round_robin", servers: []server{{name: "ws", addr: addr}}}
	app := onePool(t, pc)

	dir := t.TempDir()
	cert, key, x := selfSigned(t, dir, "ws.test")
	roots := x509.NewCertPool()
	roots.AddCert(x)
	web, admin := freePort(t), freePort(t)
	listeners := fmt.Sprintf("  - name: web\n    listen: %q\n    protocol: https\n    tls: {cert: %q, key: %q}\n    pool: app\n", web, cert, key)
	start(t, appText(admin, listeners, pc))
	wss := tlsClient(t, web, roots, false)
	wss.Timeout = 0 // the WebSocket library wants the context to bound it

	for _, tc := range []struct {
		name, url string
		client    *http.Client
	}{
		{"ws over http", "ws://" + app.web + "/chat", nil},
		{"wss over https", "wss://ws.test/chat", wss},
	} {
		t.Run(tc.name, func(t *testing.T) {
			echoThrough(t, tc.url, tc.client, closed)
		})
	}
}

// echoThrough dials url, checks that messages of every kind come back
// unchanged, and closes with the close handshake.
func echoThrough(t *testing.T, url string, client *http.Client, closed chan websocket.StatusCode) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial through fulcrum: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d, want 101", resp.StatusCode)
	}
	c.SetReadLimit(4 << 20)
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	for i, m := range []struct {
		typ websocket.MessageType
		msg []byte
	}{
		{websocket.MessageText, []byte("hello")},
		{websocket.MessageBinary, []byte{0, 1, 2, 255}},
		{websocket.MessageBinary, big},
		{websocket.MessageText, []byte("bye")},
	} {
		if err := c.Write(ctx, m.typ, m.msg); err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: read: %v", i, err)
		}
		if typ != m.typ || !bytes.Equal(got, m.msg) {
			t.Fatalf("message %d: echo of %d bytes (type %v), want %d bytes (type %v) unchanged", i, len(got), typ, len(m.msg), m.typ)
		}
	}
	// The close handshake crosses the tunnel both ways.
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake through fulcrum: %v", err)
	}
	select {
	case got := <-closed:
		if got != websocket.StatusNormalClosure {
			t.Fatalf("backend saw close status %v, want %v", got, websocket.StatusNormalClosure)
		}
	case <-ctx.Done():
		t.Fatal("backend never saw the close")
	}
}

// TestTCPListenerTransfersBothWaysWithHalfClose sends megabytes each way at
// once. The backend answers with a digest of what it received only after the
// client's half-close reaches it, and then closes: the client must read the
// backend's data, the digest, and EOF.
func TestTCPListenerTransfersBothWaysWithHalfClose(t *testing.T) {
	const size = 8 << 20
	up, down := make([]byte, size), make([]byte, size)
	for i := range up {
		up[i], down[i] = byte(rand.Uint32()), byte(rand.Uint32())
	}
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	served := make(chan error, 1)
	go func() {
		c, err := backend.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		wrote := make(chan error, 1)
		go func() { _, err := c.Write(down); wrote <- err }()
		h := sha256.New()
		n, err := io.Copy(h, c) // until the client's half-close
		if err == nil {
			err = <-wrote
		}
		if err == nil {
			_, err = c.Write(h.Sum(nil))
		}
		if err == nil && n != size {
			err = fmt.Errorf("backend received %d bytes, want %d", n, size)
		}
		served <- err
	}()

	tcp, admin := freePort(t), freePort(t)
	text := fmt.Sprintf("admin: {listen: %s}\nlisteners:\n  - name: db\n    listen: %s\n    protocol: tcp\n    pool: pg\npools:\n  - name: pg\n    balance: least_conn\n    keepalive: {type: none}\n    servers: [{name: pg1, address: %q}]\n",
		admin, tcp, backend.Addr().String())
	start(t, text)
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails, it does not block the run
	sent := make(chan error, 1)
	go func() {
		_, err := c.Write(up)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading through the TCP listener: %v after %d bytes", err, len(got))
	}
	if err := <-sent; err != nil {
		t.Fatalf("sending through the TCP listener: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(up)
	switch {
	case len(got) != size+len(sum):
		t.Fatalf("client received %d bytes, want %d", len(got), size+len(sum))
	case !bytes.Equal(got[:size], down):
		t.Fatal("client received the backend's data altered")
	case !bytes.Equal(got[size:], sum[:]):
		t.Fatal("backend's digest of the client's data does not match: the upload was altered")
	}
}
