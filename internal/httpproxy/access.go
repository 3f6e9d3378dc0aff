package httpproxy

import (
	"bytes"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
)

// AccessRule allows or denies requests at the edge. Every condition set
// must match; the first matching rule of a list decides; none matching
// allows.
type AccessRule struct {
	Allow       bool
	Prefixes    []netip.Prefix // client address in any; empty: any client
	Methods     []string       // method is one of; empty: any
	Path        *regexp.Regexp // matches the path (no query); nil: any
	HeaderName  string         // with HeaderValue: the header's value matches
	HeaderValue *regexp.Regexp
}

func (r *AccessRule) matches(cc *clientConn, path []byte) bool {
	if len(r.Prefixes) > 0 && !inPrefixes(cc.id.client, r.Prefixes) {
		return false
	}
	if len(r.Methods) > 0 {
		ok := false
		for _, m := range r.Methods {
			if string(cc.req.method) == m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.Path != nil && !r.Path.Match(path) {
		return false
	}
	if r.HeaderName != "" {
		v := cc.req.header(r.HeaderName)
		if v == nil || r.HeaderValue != nil && !r.HeaderValue.Match(v) {
			return false
		}
	}
	return true
}

// allowed applies a rule list: true unless the first matching rule denies.
func (cc *clientConn) allowed(rules []AccessRule, path []byte) bool {
	for i := range rules {
		if rules[i].matches(cc, path) {
			return rules[i].Allow
		}
	}
	return true
}

var errForbidden = []byte("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: 10\r\n")

// forbid answers 403 for a request an access rule denied.
func (cc *clientConn) forbid() outcome {
	return cc.finishLocal(append(cc.out[:0], errForbidden...), 403, "Forbidden\n")
}

var tooManyConns = []byte("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 22\r\n\r\ntoo many connections\r\n")

// limited applies the per-client request rate r; when the client runs
// ahead of it the request is answered 429 with Retry-After.
func (cc *clientConn) limited(t *limit.Table, scope int, r limit.Rate) (outcome, bool) {
	ok, wait := t.Allow(cc.id.client, scope, r)
	if ok {
		return outcome{}, false
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	b := append(cc.out[:0], "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: 18\r\nRetry-After: "...)
	b = strconv.AppendInt(b, max(secs, 1), 10)
	b = append(b, "\r\n"...)
	return cc.finishLocal(b, 429, "too many requests\n"), true
}

// pathOnly is the request path without its query.
func pathOnly(p []byte) []byte {
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
