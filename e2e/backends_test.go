package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// cookieName is the cookie the API backend sets on login.
const cookieName = "fulcrum_e2e"

// apiRequest is what the API backend saw of one request.
type apiRequest struct {
	Method, Path, Origin, Cookie string
}

// apiBackend is origin B's server. It answers every request with the
// server's own CORS fields ("Access-Control-Allow-Origin: *" and
// "Access-Control-Expose-Headers: X-Secret"), which fulcrum's route policy
// must replace (a wildcard is refused by browsers on credentialed requests;
// the policy exposes X-Request-Id instead), and records every request it sees so the test can prove which ones
// fulcrum kept from it.
type apiBackend struct {
	addr string

	mu     sync.Mutex
	seen   []apiRequest
	issued []string // cookie values set by /api/login, in order
}

func newAPIBackend(t *testing.T) *apiBackend {
	t.Helper()
	b := &apiBackend{}
	srv := httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(srv.Close)
	b.addr = srv.Listener.Addr().String()
	return b
}

func (b *apiBackend) serve(w http.ResponseWriter, r *http.Request) {
	cookie := ""
	if c, err := r.Cookie(cookieName); err == nil {
		cookie = c.Value
	}
	b.mu.Lock()
	b.seen = append(b.seen, apiRequest{Method: r.Method, Path: r.URL.Path, Origin: r.Header.Get("Origin"), Cookie: cookie})
	b.mu.Unlock()

	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Expose-Headers", "X-Secret")
	w.Header().Set("X-Secret", "server-exposed")
	w.Header().Set("X-Request-Id", "req-"+randomHex(4))
	w.Header().Set("Content-Type", "application/json")
	reply := map[string]any{"method": r.Method, "cookie": cookie, "header": r.Header.Get("X-Fulcrum-Test")}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/public":
		reply["public"] = true
	case r.Method == http.MethodPost && r.URL.Path == "/api/login":
		v := randomHex(16)
		b.mu.Lock()
		b.issued = append(b.issued, v)
		b.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		reply["issued"] = v
	case r.Method == http.MethodPut && r.URL.Path == "/api/item":
		body, _ := io.ReadAll(r.Body)
		reply["body"] = string(body)
		reply["contentType"] = r.Header.Get("Content-Type")
	case r.Method == http.MethodGet && r.URL.Path == "/api/whoami":
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
	json.NewEncoder(w).Encode(reply)
}

// requests returns a copy of what the backend has seen.
func (b *apiBackend) requests() []apiRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]apiRequest(nil), b.seen...)
}

func (b *apiBackend) cookies() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.issued...)
}

func randomHex(n int) string {
	p := make([]byte, n)
	rand.Read(p)
	return hex.EncodeToString(p)
}

// newPageServer serves browser/page (the HTML page and its script) for
// origins A and C.
func newPageServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir("browser/page")))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// wsEchoBackend echoes every WebSocket message; for each connection, the
// close status it saw arrives on closed. websocket.Accept checks that the
// Origin matches the Host, so a connection only succeeds when fulcrum passes
// the browser's Host through.
func wsEchoBackend(t *testing.T) (addr string, closed chan websocket.StatusCode) {
	t.Helper()
	closed = make(chan websocket.StatusCode, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				select {
				case closed <- websocket.CloseStatus(err):
				default:
				}
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), closed
}
