package httpproxy

import (
	"bytes"
	"errors"
)

// Errors found while parsing a client's request. Every one of them is answered
// with 400 (or 431 / 501) and the connection is closed: an ambiguous request is
// never forwarded, which is the defence against request smuggling.
var (
	ErrBadRequestLine  = errors.New("malformed request line")
	ErrBadVersion      = errors.New("unsupported HTTP version")
	ErrBadHeader       = errors.New("malformed header line")
	ErrBareLF          = errors.New("bare LF where CRLF is required")
	ErrBareCR          = errors.New("bare CR in request head")
	ErrObsFold         = errors.New("obsolete header line folding")
	ErrHeaderTooLarge  = errors.New("request head too large")
	ErrTooManyHeaders  = errors.New("too many header fields")
	ErrBadContentLen   = errors.New("invalid Content-Length")
	ErrDupContentLen   = errors.New("more than one Content-Length")
	ErrBadTE           = errors.New("Transfer-Encoding other than exactly chunked")
	ErrTEAndCL         = errors.New("both Transfer-Encoding and Content-Length")
	ErrTEHTTP10        = errors.New("Transfer-Encoding in an HTTP/1.0 request")
	ErrMissingHost     = errors.New("missing Host header")
	ErrDupHost         = errors.New("more than one Host header")
	ErrBadHost         = errors.New("invalid Host header")
	ErrBadTarget       = errors.New("invalid request target")
	ErrMethodCONNECT   = errors.New("CONNECT is not supported")
	ErrBadChunk        = errors.New("malformed chunked body")
	ErrBodyTooLarge    = errors.New("request body too large")
	ErrHeaderBytesBody = errors.New("head and body framing disagree")
)

// maxHeaders bounds the number of header fields in one head.
const maxHeaders = 128

// field is one header field; name and value alias the connection's buffer.
type field struct {
	name, value []byte
}

// Framing of a message body.
type framing uint8

const (
	bodyNone    framing = iota // no body
	bodyLength                 // Content-Length bytes
	bodyChunked                // chunked transfer coding
	bodyToClose                // until the server closes (responses only)
)

// tchar reports whether c may appear in a token (RFC 9110 5.6.2).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isToken reports whether b is a non-empty token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// badValueByte marks the bytes a field value may not hold: NUL, CR, LF and
// the other controls but horizontal tab, and DEL.
var badValueByte = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = c != '\t'
	}
	t[0x7f] = true
	return t
}()

// validValue reports whether b holds only field-value characters: visible
// characters, obs-text, space and horizontal tab.
func validValue(b []byte) bool {
	for len(b) >= 4 {
		if badValueByte[b[0]] || badValueByte[b[1]] || badValueByte[b[2]] || badValueByte[b[3]] {
			return false
		}
		b = b[4:]
	}
	for _, c := range b {
		if badValueByte[c] {
			return false
		}
	}
	return true
}

// trimOWS removes optional whitespace (SP / HTAB) around b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case, without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v contains token t
// (lower-case), ignoring case.
func hasToken(v []byte, t string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if equalFold(trimOWS(item), t) {
			return true
		}
	}
	return false
}

// parseLength parses a Content-Length value: 1 to 18 ASCII digits.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
