package httpproxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

// h2Front serves f's handler over TLS with HTTP/2 (the H2Switch), and
// returns a client speaking HTTP/2 to it.
func h2Front(t testing.TB, f *proxyFixture) (string, *http.Client) {
	t.Helper()
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(certSrv.Close)
	sw := httpproxy.NewH2Switch(f.handler, slog.New(slog.DiscardHandler))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certSrv.TLS.Certificates, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
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
			go func() {
				defer wg.Done()
				tc := c.(*tls.Conn)
				if tc.HandshakeContext(context.Background()) != nil {
					c.Close()
					return
				}
				sw.ServeConn(tc)
			}()
		}
	}()
	tr := certSrv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		sw.Shutdown(ctx)
		wg.Wait()
	})
	return "https://" + ln.Addr().String(), client
}

// TestHTTP2Bridge: HTTP/2 requests reach the HTTP/1.1 core on the stream's
// goroutine and come back whole: bodies of known and unknown length both
// ways, chunked and close-delimited replies, HEAD and 204, large bodies,
// and a reply the server cuts short is not delivered as complete.
func TestHTTP2Bridge(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Length", strconv.FormatInt(r.ContentLength, 10))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		switch r.URL.Path {
		case "/echo":
			w.Write(body)
		case "/chunked":
			for i := 0; i < 5; i++ {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
		case "/big":
			w.Write(big)
		case "/nocontent":
			w.WriteHeader(204)
		case "/cut":
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("only this"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		default:
			io.WriteString(w, "hello "+r.Method+" "+r.URL.RequestURI())
		}
	}))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	base, client := h2Front(t, f)

	do := func(method, path string, body io.Reader, length int64) (*http.Response, string, error) {
		req, _ := http.NewRequest(method, base+path, body)
		if body != nil {
			req.ContentLength = length
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	resp, got, err := do("GET", "/x?q=1", nil, 0)
	if err != nil || resp.ProtoMajor != 2 || got != "hello GET /x?q=1" {
		t.Fatalf("GET: %v %q %v", resp, got, err)
	}
	if resp, got, err := do("POST", "/echo", strings.NewReader("known length"), 12); err != nil || got != "known length" || resp.Header.Get("X-Seen-Length") != "12" {
		t.Fatalf("POST with a length: %q, %v, server saw length %s", got, err, resp.Header.Get("X-Seen-Length"))
	}
	// Unknown length: re-chunked to the server.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 50; i++ {
			fmt.Fprintf(pw, "piece %d|", i)
		}
		pw.Close()
	}()
	var want strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&want, "piece %d|", i)
	}
	if resp, got, err := do("POST", "/echo", pr, -1); err != nil || got != want.String() {
		t.Fatalf("POST of unknown length: %q (%d bytes), %v; server saw length %s", got[:min(len(got), 40)], len(got), err, resp.Header.Get("X-Seen-Length"))
	}
	if _, got, err := do("POST", "/echo", bytes.NewReader(big), int64(len(big))); err != nil || got != string(big) {
		t.Fatalf("1 MiB upload: %d bytes back, %v", len(got), err)
	}
	if _, got, err := do("GET", "/chunked", nil, 0); err != nil || got != "part 0;part 1;part 2;part 3;part 4;" {
		t.Fatalf("chunked reply: %q, %v", got, err)
	}
	if _, got, err := do("GET", "/big", nil, 0); err != nil || got != string(big) {
		t.Fatalf("1 MiB download: %d bytes, %v", len(got), err)
	}
	if resp, got, err := do("HEAD", "/big", nil, 0); err != nil || got != "" || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %q %v", resp, got, err)
	}
	if resp, got, err := do("GET", "/nocontent", nil, 0); err != nil || resp.StatusCode != 204 || got != "" {
		t.Fatalf("204: %v %q %v", resp, got, err)
	}
	if _, got, err := do("GET", "/cut", nil, 0); err == nil {
		t.Fatalf("a reply the server cut short arrived as complete: %q", got)
	}
	// Many streams at once on one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/s/%d", i)
			if _, got, err := do("GET", path, nil, 0); err != nil || got != "hello GET "+path {
				errs <- fmt.Errorf("stream %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHTTP2BridgeNoUnboundedGrowth: finished streams leave nothing tracked
// in the core.
func TestHTTP2BridgeNoUnboundedGrowth(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	base, client := h2Front(t, f)
	for i := 0; i < 200; i++ {
		resp, err := client.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The last response can reach the client (END_STREAM goes out with its
	// last DATA frame) a moment before its stream's goroutine has left the
	// core.
	deadline := time.Now().Add(5 * time.Second)
	for f.handler.ActiveConns() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.handler.ActiveConns(); n != 0 {
		t.Fatalf("%d core connections still tracked after 200 finished streams", n)
	}
}

// rawH2Conn dials base (from h2Front) speaking HTTP/2 frames directly:
// preface and the given client settings sent.
func rawH2Conn(t *testing.T, base string, settings ...http2.Setting) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, fr
}

// requestBlock encodes a request's header block.
func requestBlock(method, path string, fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "h2.test"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// TestHTTP2FlowControl: the server never sends more DATA than the client's
// windows allow (a 1000-byte stream window, the 65,535-byte connection
// window), resumes as WINDOW_UPDATEs come, and delivers the body whole.
func TestHTTP2FlowControl(t *testing.T) {
	body := bytes.Repeat([]byte("fulcrum!"), 100<<10/8) // 100 KiB
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	base, _ := h2Front(t, f)
	_, fr := rawH2Conn(t, base, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("GET", "/big"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	streamWin, connWin := int64(1000), int64(65535)
	var got []byte
	for done := false; !done; {
		fm, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d body bytes: %v", len(got), err)
		}
		switch fm := fm.(type) {
		case *http2.MetaHeadersFrame:
			if s := fm.PseudoValue("status"); s != "200" {
				t.Fatalf("status %q", s)
			}
		case *http2.DataFrame:
			n := int64(len(fm.Data()))
			streamWin -= n
			connWin -= n
			if streamWin < 0 || connWin < 0 {
				t.Fatalf("a %d-byte DATA frame overran the windows (stream %d, connection %d after it)", n, streamWin, connWin)
			}
			got = append(got, fm.Data()...)
			done = fm.StreamEnded()
			if n > 0 && !done {
				// Grant what was used, as a slow reader would.
				fr.WriteWindowUpdate(1, uint32(n))
				fr.WriteWindowUpdate(0, uint32(n))
				streamWin += n
				connWin += n
			}
		case *http2.SettingsFrame:
			if !fm.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("server ended the exchange: %v", fm)
		}
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes, want the %d-byte body", len(got), len(body))
	}
}

// TestHTTP2Fields: cookies split over fields reach an HTTP/1.1 server as
// one Cookie line (RFC 9113 8.2.3), an interim 103 goes out as its own
// HEADERS before the final response, and malformed requests are reset with
// PROTOCOL_ERROR without reaching the server.
func TestHTTP2Fields(t *testing.T) {
	var mu sync.Mutex
	var whole []string // requests the server read whole, body included
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			mu.Lock()
			whole = append(whole, r.URL.Path+" "+string(body))
			mu.Unlock()
		}
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
		}
		io.WriteString(w, "cookie="+strings.Join(r.Header.Values("Cookie"), "|"))
	}))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{}, backend.Listener.Addr().String())
	base, _ := h2Front(t, f)
	_, fr := rawH2Conn(t, base)

	// read collects the frames of stream id until it ends.
	read := func(id uint32) (statuses []string, body string, rst http2.ErrCode) {
		t.Helper()
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("stream %d: %v", id, err)
			}
			if fm.Header().StreamID != id {
				if sf, ok := fm.(*http2.SettingsFrame); ok && !sf.IsAck() {
					fr.WriteSettingsAck()
				}
				continue
			}
			switch fm := fm.(type) {
			case *http2.MetaHeadersFrame:
				statuses = append(statuses, fm.PseudoValue("status"))
				if fm.StreamEnded() {
					return
				}
			case *http2.DataFrame:
				body += string(fm.Data())
				if fm.StreamEnded() {
					return
				}
			case *http2.RSTStreamFrame:
				return statuses, body, fm.ErrCode
			}
		}
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("GET", "/cookies", "cookie", "a=1", "cookie", "b=2"), EndStream: true, EndHeaders: true})
	if st, body, rst := read(1); len(st) != 1 || st[0] != "200" || body != "cookie=a=1; b=2" || rst != 0 {
		t.Fatalf("cookies: statuses %v, body %q, reset %v; want one Cookie line \"a=1; b=2\"", st, body, rst)
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: requestBlock("GET", "/hints"), EndStream: true, EndHeaders: true})
	if st, _, rst := read(3); len(st) != 2 || st[0] != "103" || st[1] != "200" || rst != 0 {
		t.Fatalf("early hints: statuses %v, reset %v; want 103 then 200", st, rst)
	}
	bad := []struct {
		name   string
		block  []byte
		end    bool
		data   string
		reason string
	}{
		{"connection-specific field", requestBlock("GET", "/bad1", "connection", "keep-alive"), true, "", "Connection is not allowed in HTTP/2"},
		{"transfer-encoding", requestBlock("POST", "/bad2", "transfer-encoding", "chunked"), false, "0\r\n\r\n", "Transfer-Encoding is not allowed"},
		{"te other than trailers", requestBlock("GET", "/bad3", "te", "gzip"), true, "", "TE may only say trailers"},
		{"body longer than content-length", requestBlock("POST", "/bad4", "content-length", "2"), false, "four", "more DATA than content-length"},
		{"space in path", requestBlock("GET", "/bad 5"), true, "", "a path with a space would split the request line"},
	}
	id := uint32(5)
	for _, b := range bad {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b.block, EndStream: b.end, EndHeaders: true})
		if !b.end {
			fr.WriteData(id, true, []byte(b.data))
		}
		if st, _, rst := read(id); rst != http2.ErrCodeProtocol {
			t.Errorf("%s (%s): statuses %v, reset %v; want RST_STREAM PROTOCOL_ERROR", b.name, b.reason, st, rst)
		}
		id += 2
	}
	// The connection still serves.
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: requestBlock("GET", "/after"), EndStream: true, EndHeaders: true})
	if st, _, _ := read(id); len(st) != 1 || st[0] != "200" {
		t.Fatalf("after the malformed requests: statuses %v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	// A request with a body may reach the server before its body turns
	// out wrong (the head goes out first, as with HTTP/1.1), but the server
	// never gets it whole.
	for _, p := range whole {
		if strings.HasPrefix(p, "/bad") {
			t.Errorf("malformed request %q reached the server whole", p)
		}
	}
}

// TestHTTP2IdleTimeout: a connection with no stream for the client idle
// timeout gets GOAWAY(NO_ERROR) and is closed.
func TestHTTP2IdleTimeout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	f := startProxy(t, fixtureOpts{clientIdle: 500 * time.Millisecond}, backend.Listener.Addr().String())
	base, _ := h2Front(t, f)
	_, fr := rawH2Conn(t, base)
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("GET", "/"), EndStream: true, EndHeaders: true})
	start := time.Now()
	var goaway *http2.GoAwayFrame
	for {
		fm, err := fr.ReadFrame()
		if err != nil {
			if goaway == nil {
				t.Fatalf("connection ended without GOAWAY: %v", err)
			}
			break
		}
		if sf, ok := fm.(*http2.SettingsFrame); ok && !sf.IsAck() {
			fr.WriteSettingsAck()
		}
		if g, ok := fm.(*http2.GoAwayFrame); ok {
			goaway = g
		}
	}
	if goaway.ErrCode != http2.ErrCodeNo || goaway.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last stream %d, want NO_ERROR after stream 1", goaway.ErrCode, goaway.LastStreamID)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("closed after %v, before the 500ms idle timeout", d)
	}
}

// FuzzH2Conn feeds arbitrary frames (after the client preface) to the HTTP/2
// server in front of a real backend. Whatever arrives, the server must not
// panic, and once the client has finished sending it must close the
// connection: no stream or writer may hang on a window, a body or a lock.
func FuzzH2Conn(f *testing.F) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	f.Cleanup(backend.Close)
	fx := startProxy(f, fixtureOpts{clientIdle: time.Second}, backend.Listener.Addr().String())
	base, _ := h2Front(f, fx)
	addr := strings.TrimPrefix(base, "https://")

	frames := func(build func(fr *http2.Framer)) []byte {
		var buf bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
		build(fr)
		return buf.Bytes()
	}
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("GET", "/"), EndStream: true, EndHeaders: true})
	}))
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("POST", "/", "content-length", "3"), EndHeaders: true})
		fr.WriteData(1, false, []byte("ab"))
		fr.WriteWindowUpdate(0, 100)
		fr.WriteData(1, true, []byte("c"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: requestBlock("GET", "/x"), EndStream: false, EndHeaders: false})
		fr.WriteContinuation(3, true, nil)
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WritePing(false, [8]byte{1})
		fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	}))
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: requestBlock("POST", "/"), EndHeaders: true})
		fr.WriteData(1, false, bytes.Repeat([]byte("x"), 300))
		fr.WritePriority(1, http2.PriorityParam{StreamDep: 1})
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
	}))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			done <- err
		}()
		c.Write([]byte(http2.ClientPreface))
		c.Write(in)
		c.CloseWrite()
		if err := <-done; err != nil && !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "connection reset") {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept the connection open 5s after the client finished sending")
			}
		}
	})
}
