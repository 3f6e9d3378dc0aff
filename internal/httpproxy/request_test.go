package httpproxy

import (
	"errors"
	"strings"
	"testing"
)

func parse(t *testing.T, raw string) (*request, error) {
	t.Helper()
	b := []byte(raw)
	end := findHeadEnd(b, 0)
	if end < 0 {
		t.Fatalf("findHeadEnd(%q) = -1, want a complete head", raw)
	}
	var r request
	return &r, parseRequest(b[:end], &r)
}

func TestParseRequestValid(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		method  string
		path    string
		host    string
		framing framing
		length  int64
		close   bool
		upgrade bool
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", "a", bodyNone, 0, false, false},
		{"query", "GET /x?y=1 HTTP/1.1\r\nHost: a:80\r\n\r\n", "GET", "/x?y=1", "a:80", bodyNone, 0, false, false},
		{"content-length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", "POST", "/p", "a", bodyLength, 12, false, false},
		{"zero length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "POST", "/p", "a", bodyNone, 0, false, false},
		{"chunked", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", "/p", "a", bodyChunked, 0, false, false},
		{"chunked any case", "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", "POST", "/p", "a", bodyChunked, 0, false, false},
		{"http10 closes", "GET / HTTP/1.0\r\n\r\n", "GET", "/", "", bodyNone, 0, true, false},
		{"http10 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", "", bodyNone, 0, false, false},
		{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET", "/", "a", bodyNone, 0, true, false},
		{"absolute form", "GET http://b.example/x HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/x", "b.example", bodyNone, 0, false, false},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", "a", bodyNone, 0, false, false},
		{"websocket", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET", "/ws", "a", bodyNone, 0, false, true},
		{"options star", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*", "a", bodyNone, 0, false, false},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "GET", "/", "[::1]:8080", bodyNone, 0, false, false},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", "GET", "/", "a", bodyNone, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parse(t, tt.raw)
			if err != nil {
				t.Fatalf("parseRequest: %v", err)
			}
			if string(r.method) != tt.method || string(r.path) != tt.path || string(r.host) != tt.host {
				t.Errorf("got %s %s host %q, want %s %s host %q", r.method, r.path, r.host, tt.method, tt.path, tt.host)
			}
			if r.framing != tt.framing || r.length != tt.length {
				t.Errorf("got framing %d length %d, want %d %d", r.framing, r.length, tt.framing, tt.length)
			}
			if r.close != tt.close || r.upgrade != tt.upgrade {
				t.Errorf("got close %v upgrade %v, want %v %v", r.close, r.upgrade, tt.close, tt.upgrade)
			}
		})
	}
}

func TestParseRequestRejects(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTEAndCL},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ErrTEAndCL},
		{"two CL same", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", ErrDupContentLen},
		{"two CL differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", ErrDupContentLen},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", ErrBadContentLen},
		{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", ErrBadContentLen},
		{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", ErrBadContentLen},
		{"CL huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", ErrBadContentLen},
		{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", ErrBadContentLen},
		{"TE trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n", ErrBadTE},
		{"TE tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", ErrBadTE},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", ErrBadTE},
		{"TE list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", ErrBadTE},
		{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", ErrBadTE},
		{"TE gzip chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrBadTE},
		{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadTE},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTEHTTP10},
		{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", ErrBadHeader},
		{"tab before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n", ErrBadHeader},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", ErrBadHeader},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n", ErrBadHeader},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nfoo\r\n\r\n", ErrBadHeader},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", ErrBadHeader},
		{"ctl in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", ErrBadHeader},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", ErrBadHeader},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", ErrBareCR},
		{"bare LF line", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", ErrBareLF},
		{"LF only head", "GET / HTTP/1.1\nHost: a\n\n", ErrBareLF},
		{"obs fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", ErrObsFold},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", ErrMissingHost},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrDupHost},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ErrBadHost},
		{"host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", ErrBadHost},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", ErrBadVersion},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", ErrBadVersion},
		{"lowercase proto", "GET / http/1.1\r\nHost: a\r\n\r\n", ErrBadRequestLine},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadRequestLine},
		{"no target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadRequestLine},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadRequestLine},
		{"target ctl", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadTarget},
		{"target non-ascii", "GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadTarget},
		{"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadTarget},
		{"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", ErrMethodCONNECT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.raw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("parseRequest(%q) = %v, want %v", tt.raw, err, tt.want)
			}
			if s := statusFor(err); s < 400 || s >= 600 || s == 404 {
				t.Errorf("statusFor(%v) = %d, want a 4xx/5xx refusal", err, s)
			}
		})
	}
}

func TestFindHeadEnd(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"
	for split := 0; split <= len(raw); split++ {
		// Scanning resumed at any point finds the same end.
		if got := findHeadEnd([]byte(raw), min(split, len(raw)-4)); got != len(raw)-4 {
			t.Fatalf("from %d: got %d, want %d", split, got, len(raw)-4)
		}
	}
	if got := findHeadEnd([]byte("GET / HTTP/1.1\r\nHost: a\r\n"), 0); got != -1 {
		t.Fatalf("incomplete head: got %d, want -1", got)
	}
}

func TestParseResponseTolerant(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		head    bool
		status  int
		framing framing
		length  int64
		close   bool
	}{
		{"crlf", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false, 200, bodyLength, 3, false},
		{"lf only", "HTTP/1.1 200 OK\nContent-Length: 3\n\n", false, 200, bodyLength, 3, false},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, 204, bodyNone, 0, false},
		{"http10 no length", "HTTP/1.0 200 OK\r\n\r\n", false, 200, bodyToClose, 0, true},
		{"http10 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false, 200, bodyLength, 1, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 200, bodyChunked, 0, false},
		{"gzip chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, 200, bodyChunked, 0, false},
		{"te not chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, 200, bodyToClose, 0, true},
		{"te beats cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false, 200, bodyChunked, 0, false},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n", true, 200, bodyNone, 0, false},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 300\r\n\r\n", false, 304, bodyNone, 0, false},
		{"same CL twice", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, 200, bodyLength, 3, false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n", false, 200, bodyLength, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			b := []byte(tt.raw)
			end := findRespHeadEnd(b, 0)
			if end != len(b) {
				t.Fatalf("findRespHeadEnd = %d, want %d", end, len(b))
			}
			if err := parseResponse(b[:end], &r, tt.head); err != nil {
				t.Fatalf("parseResponse: %v", err)
			}
			if r.status != tt.status || r.framing != tt.framing || r.length != tt.length || r.close != tt.close {
				t.Errorf("got status %d framing %d length %d close %v, want %d %d %d %v",
					r.status, r.framing, r.length, r.close, tt.status, tt.framing, tt.length, tt.close)
			}
		})
	}
	bad := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
	}
	for _, raw := range bad {
		var r response
		if err := parseResponse([]byte(raw), &r, false); err == nil {
			t.Errorf("parseResponse(%q) succeeded, want an error", raw)
		}
	}
}

func TestChunkSize(t *testing.T) {
	good := map[string]int64{"0\r": 0, "a\r": 10, "FF\r": 255, "10;ext\r": 16, "10 ;a=b\r": 16, "10;a=\"q\\\"x\"\r": 16}
	for in, want := range good {
		if n, err := parseChunkSize([]byte(in), true); err != nil || n != want {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "\r", "x\r", "0x10\r", "10", "-1\r", "10;\r", "10;a=\r", "1 0\r", "ffffffffffffffffff\r", "10;a=\"x\r"} {
		if _, err := parseChunkSize([]byte(in), true); err == nil {
			t.Errorf("parseChunkSize(%q) accepted, want an error", in)
		}
	}
	// Servers are read tolerantly: bare LF and odd extensions pass.
	if n, err := parseChunkSize([]byte("1a;;junk"), false); err != nil || n != 26 {
		t.Errorf("tolerant parseChunkSize = %d, %v; want 26", n, err)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://x/y HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := findHeadEnd(b, 0)
		if end < 0 {
			return
		}
		var r request
		if err := parseRequest(b[:end], &r); err != nil {
			return
		}
		// An accepted request has one framing and no ambiguity.
		if r.framing == bodyLength && r.length <= 0 {
			t.Fatalf("length framing with length %d", r.length)
		}
		if r.minor == 1 && len(r.host) == 0 && r.header("host") == nil {
			t.Fatalf("HTTP/1.1 request without host accepted: %q", b)
		}
		if strings.ContainsAny(string(r.path), " \r\n") {
			t.Fatalf("path with whitespace accepted: %q", r.path)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.0 200 OK\n\n"), true)
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		var r response
		if err := parseResponse(b, &r, head); err != nil {
			return
		}
		if r.status < 100 || r.status > 999 {
			t.Fatalf("status %d accepted", r.status)
		}
		if r.framing == bodyToClose && !r.close {
			t.Fatalf("close-delimited body on a kept connection")
		}
	})
}

func FuzzChunkSize(f *testing.F) {
	f.Add([]byte("1a;x=y\r"), true)
	f.Fuzz(func(t *testing.T, b []byte, strict bool) {
		n, err := parseChunkSize(b, strict)
		if err == nil && n < 0 {
			t.Fatalf("negative chunk size %d from %q", n, b)
		}
	})
}
