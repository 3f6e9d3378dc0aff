package httpproxy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const corpusDir = "testdata/smuggling"

// seenRequest is a request as the server received it.
type seenRequest struct {
	method, uri string
	body        []byte
}

func (r seenRequest) String() string {
	if len(r.body) == 0 {
		return r.method + " " + r.uri
	}
	return fmt.Sprintf("%s %s %q", r.method, r.uri, r.body)
}

// tag is what the recording server answers a request with.
func (r seenRequest) tag() string { return r.method + " " + r.uri }

// corpusCase is one line of testdata/smuggling/expect.txt.
type corpusCase struct {
	file     string
	raw      []byte
	statuses []int
	want     []seenRequest // must reach the server complete, in this order
	partial  []seenRequest // may reach the server head first, never complete
	bug      string        // a known defect: skip while the case fails
}

// decodeCorpus turns the escape format of README.md into the bytes to send.
func decodeCorpus(text []byte) ([]byte, error) {
	var out []byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch c {
		case '\n':
			continue
		case '\r', '\t':
			return nil, fmt.Errorf("offset %d: raw %q, write it escaped", i, c)
		case '\\':
		default:
			out = append(out, c)
			continue
		}
		if i+1 == len(text) {
			return nil, fmt.Errorf("offset %d: dangling backslash", i)
		}
		i++
		switch text[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(text) {
				return nil, fmt.Errorf("offset %d: short \\x escape", i)
			}
			v, err := strconv.ParseUint(string(text[i+1:i+3]), 16, 8)
			if err != nil {
				return nil, fmt.Errorf("offset %d: bad \\x escape: %w", i, err)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("offset %d: unknown escape \\%c", i, text[i])
		}
	}
	return out, nil
}

// parseSeen parses the requests field of a manifest line.
func parseSeen(s string) (want, partial []seenRequest, err error) {
	s = strings.TrimSpace(s)
	if s == "-" {
		return nil, nil, nil
	}
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		cut := strings.HasPrefix(item, "~")
		item = strings.TrimPrefix(item, "~")
		method, rest, ok := strings.Cut(item, " ")
		if !ok {
			return nil, nil, fmt.Errorf("request %q: want METHOD URI [\"body\"]", item)
		}
		uri, body, _ := strings.Cut(rest, " ")
		r := seenRequest{method: method, uri: uri}
		if body = strings.TrimSpace(body); body != "" {
			b, err := strconv.Unquote(body)
			if err != nil {
				return nil, nil, fmt.Errorf("request %q: body: %w", item, err)
			}
			r.body = []byte(b)
		}
		if cut {
			partial = append(partial, r)
		} else {
			want = append(want, r)
		}
	}
	return want, partial, nil
}

// loadCorpus reads the manifest and every request file it names.
func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join(corpusDir, "expect.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for n, line := range strings.Split(string(manifest), "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		where := fmt.Sprintf("expect.txt:%d", n+1)
		fields := strings.Split(line, "|")
		if len(fields) < 3 || len(fields) > 4 {
			t.Fatalf("%s: want file | statuses | requests [| note], got %d fields", where, len(fields))
		}
		c := corpusCase{file: strings.TrimSpace(fields[0])}
		for _, s := range strings.Fields(fields[1]) {
			code, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s: status %q: %v", where, s, err)
			}
			c.statuses = append(c.statuses, code)
		}
		if c.want, c.partial, err = parseSeen(fields[2]); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if len(fields) == 4 {
			c.bug = strings.TrimSpace(fields[3])
		}
		text, err := os.ReadFile(filepath.Join(corpusDir, c.file))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if c.raw, err = decodeCorpus(text); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		cases = append(cases, c)
	}
	return cases
}

// recordingServer is a raw HTTP/1.1 server that records what reaches it. It
// answers each complete request with 200 and "METHOD URI" as the body, so a
// client can tell which request a response belongs to.
type recordingServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	live atomic.Int64 // connections being served

	mu       sync.Mutex
	complete []seenRequest
	partial  []seenRequest // head read, body cut short
	garbage  []string      // bytes that were not a request
}

func startRecorder(t testing.TB) *recordingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &recordingServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.live.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.live.Add(-1)
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *recordingServer) addr() string { return s.ln.Addr().String() }

func (s *recordingServer) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			// Only a close between requests is clean.
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				s.mu.Lock()
				s.garbage = append(s.garbage, err.Error())
				s.mu.Unlock()
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		r := seenRequest{method: req.Method, uri: req.RequestURI, body: body}
		s.mu.Lock()
		if err != nil {
			s.partial = append(s.partial, r)
		} else {
			s.complete = append(s.complete, r)
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
		tag := r.tag()
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(tag), tag); err != nil {
			return
		}
	}
}

// quiesce waits until no connection is being served.
func (s *recordingServer) quiesce(timeout time.Duration) bool {
	return waitFor(timeout, func() bool { return s.live.Load() == 0 })
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// corpusResult is what one case produced, on both sides of fulcrum.
type corpusResult struct {
	statuses []int
	bodies   []string // of the 2xx responses, in order
	readErr  error    // reading responses failed other than by a close
	notDone  string   // fulcrum or the server did not finish in time

	complete, partial []seenRequest
	garbage           []string
}

// runCorpusCase sends c.raw on one connection, reads every response until
// fulcrum closes the connection, then waits for both fulcrum and the server
// to finish before collecting what the server saw.
func runCorpusCase(c corpusCase, f *proxyFixture, rec *recordingServer) (res corpusResult) {
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		res.readErr = err
		return res
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(c.raw); err != nil {
		res.readErr = fmt.Errorf("writing request: %w", err)
	}
	br := bufio.NewReader(conn)
	for res.readErr == nil {
		// A close between responses is the expected end; ReadResponse
		// would report it as an unexpected EOF.
		if _, err := br.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				res.readErr = err
			}
			break
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			res.readErr = err
			break
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.statuses = append(res.statuses, resp.StatusCode)
		if resp.StatusCode/100 == 2 {
			res.bodies = append(res.bodies, string(body))
		}
		if err != nil {
			res.readErr = fmt.Errorf("reading body of %d: %w", resp.StatusCode, err)
		}
	}
	conn.Close()
	// Once fulcrum is done with the client, every server connection is
	// either closed or idle in the pool; closing the pool ends the rest.
	if !waitFor(5*time.Second, func() bool { return f.handler.ActiveConns() == 0 }) {
		res.notDone = "fulcrum still serving the connection after 5s"
	}
	f.target.Upstreams[0].Close()
	if !rec.quiesce(5 * time.Second) {
		res.notDone += " server connections still open after 5s"
	}
	rec.mu.Lock()
	res.complete = slices.Clone(rec.complete)
	res.partial = slices.Clone(rec.partial)
	res.garbage = slices.Clone(rec.garbage)
	rec.mu.Unlock()
	return res
}

// problems compares a result with the case's expectations.
func (c corpusCase) problems(res corpusResult) []string {
	var p []string
	if res.readErr != nil {
		p = append(p, fmt.Sprintf("client: %v (statuses so far %v)", res.readErr, res.statuses))
	}
	if res.notDone != "" {
		p = append(p, res.notDone)
	}
	if !slices.Equal(res.statuses, c.statuses) {
		p = append(p, fmt.Sprintf("client got statuses %v, want %v", res.statuses, c.statuses))
	}
	if !slices.EqualFunc(res.complete, c.want, sameRequest) {
		p = append(p, fmt.Sprintf("server saw %v, want %v", res.complete, c.want))
	}
	for _, r := range res.partial {
		if !slices.ContainsFunc(c.partial, func(w seenRequest) bool { return w.tag() == r.tag() }) {
			p = append(p, fmt.Sprintf("server saw the head of %s (body cut), want nothing of it", r.tag()))
		}
	}
	if len(res.garbage) > 0 {
		p = append(p, fmt.Sprintf("server read bytes that were not a request: %v", res.garbage))
	}
	// Each 2xx must answer its own request, in order.
	var tags []string
	for _, r := range res.complete {
		tags = append(tags, r.tag())
	}
	if !slices.Equal(res.bodies, tags) {
		p = append(p, fmt.Sprintf("client's 2xx bodies %q do not match the requests the server answered %q", res.bodies, tags))
	}
	return p
}

// smuggled reports whether the server saw a request the manifest does not
// name at all: one the client hid in a body or after a refused head.
func (c corpusCase) smuggled(res corpusResult) bool {
	known := func(r seenRequest) bool {
		same := func(w seenRequest) bool { return w.tag() == r.tag() }
		return slices.ContainsFunc(c.want, same) || slices.ContainsFunc(c.partial, same)
	}
	unknown := func(r seenRequest) bool { return !known(r) }
	return slices.ContainsFunc(res.complete, unknown) || slices.ContainsFunc(res.partial, unknown)
}

func sameRequest(a, b seenRequest) bool {
	return a.method == b.method && a.uri == b.uri && bytes.Equal(a.body, b.body)
}

// TestSmugglingCorpus sends every request of testdata/smuggling raw to
// fulcrum in front of a recording server, each on its own connection, and
// checks what the client read and exactly what the server saw. See
// testdata/smuggling/README.md.
func TestSmugglingCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 60 {
		t.Fatalf("corpus has %d cases, want at least 60", len(cases))
	}
	// Every case gets its own server and proxy, and they run all at once:
	// most cases end with fulcrum's idle or header timeout.
	type rig struct {
		f   *proxyFixture
		rec *recordingServer
	}
	rigs := make([]rig, len(cases))
	for i := range cases {
		rec := startRecorder(t)
		f := startProxy(t, fixtureOpts{maxHeader: 4096, maxBody: 1 << 20}, rec.addr())
		cfg := *f.handler.Config()
		cfg.ClientHeader, cfg.ClientBody, cfg.ClientIdle = 500*time.Millisecond, 500*time.Millisecond, 300*time.Millisecond
		f.handler.Swap(&cfg)
		rigs[i] = rig{f, rec}
	}
	results := make([]corpusResult, len(cases))
	var wg sync.WaitGroup
	for i := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runCorpusCase(cases[i], rigs[i].f, rigs[i].rec)
		}()
	}
	wg.Wait()

	var refused, cut, forwarded, accepted, smuggled, bugs int
	for i, c := range cases {
		res := results[i]
		switch {
		case c.smuggled(res):
			smuggled++
		case len(res.complete) > len(c.want):
			accepted++
		case len(res.complete) > 0:
			forwarded++
		default:
			refused++
			if len(res.partial) > 0 {
				cut++
			}
		}
		t.Run(strings.TrimSuffix(c.file, ".txt"), func(t *testing.T) {
			p := c.problems(res)
			switch {
			case c.bug != "" && len(p) > 0:
				bugs++
				t.Skipf("%s\n%s", c.bug, strings.Join(p, "\n"))
			case c.bug != "":
				t.Errorf("the case passes now: remove its note from expect.txt (%s)", c.bug)
			}
			for _, s := range p {
				t.Error(s)
			}
		})
	}
	t.Logf("smuggling corpus: %d requests sent: %d refused (%d of them with a valid head forwarded and the body cut), "+
		"%d forwarded as framed, %d forwarded that should have been refused, %d smuggled; %d known bugs skipped",
		len(cases), refused, cut, forwarded, accepted, smuggled, bugs)
}

// TestSmugglingCorpusComplete keeps the manifest and the request files in step.
func TestSmugglingCorpusComplete(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range loadCorpus(t) {
		if listed[c.file] {
			t.Errorf("%s is listed twice in expect.txt", c.file)
		}
		listed[c.file] = true
	}
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "expect.txt" && strings.HasSuffix(n, ".txt") && !listed[n] {
			t.Errorf("%s has no line in expect.txt", n)
		}
	}
}

func TestDecodeCorpus(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"GET / HTTP/1.1\\r\\n\n\\r\\n\n", "GET / HTTP/1.1\r\n\r\n", true},
		{"a\\0b\\tc\\x7f\\\\", "a\x00b\tc\x7f\\", true},
		{"a\tb", "", false},
		{"a\rb", "", false},
		{"a\\qb", "", false},
		{"a\\x4", "", false},
		{"a\\", "", false},
	}
	for _, tt := range tests {
		got, err := decodeCorpus([]byte(tt.in))
		if (err == nil) != tt.ok || string(got) != tt.want {
			t.Errorf("decodeCorpus(%q) = %q, %v; want %q (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
