// Package route picks the pool for a request by content: an ordered list of
// rules matched on host, path and one header, where the first match wins.
//
// The package is pure: no I/O, nothing internal imported. Rules are checked
// and normalized once by New; Match does not allocate.
package route

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrInvalidRule is wrapped by every error New returns for a bad rule.
var ErrInvalidRule = errors.New("invalid route rule")

// Rule is one content-switching rule. Empty fields match anything, so a rule
// with no match fields matches every request (a default route, put it last).
type Rule struct {
	// Host matches the request host, case-insensitively, ignoring a port and
	// a trailing dot: "example.com", or "*.example.com" for any name under
	// example.com (a.example.com, a.b.example.com, not example.com itself),
	// or an IP literal ("192.0.2.1", "::1" or "[::1]").
	Host string
	// PathPrefix matches paths starting with these bytes ("/api/" matches
	// "/api/users" but not "/api"). It excludes Path.
	PathPrefix string
	// Path matches exactly this path. Paths compare byte for byte, case
	// sensitive, without the query string.
	Path string
	// HeaderName and HeaderValue match a request header whose value is
	// exactly HeaderValue; the name is case-insensitive. Both or neither.
	HeaderName, HeaderValue string
	// Target is the caller's index (the pool) returned on a match.
	Target int
}

// Table is an immutable, ordered set of rules, safe for concurrent use.
type Table struct {
	rules []matcher
	idx   *index // nil for small tables: a scan is cheaper
}

// matcher is a Rule checked and normalized for matching.
type matcher struct {
	host     string // lower case, no trailing dot; for a wildcard the suffix from the dot
	wildcard bool
	path     string
	prefix   bool   // path is a prefix
	header   string // canonical name, "" for none
	value    string
	target   int
}

// New checks the rules and returns a table matching them in order. It reports
// every bad rule at once, each error naming the rule's index and field and
// wrapping ErrInvalidRule.
func New(rules []Rule) (*Table, error) {
	t := &Table{rules: make([]matcher, 0, len(rules))}
	var errs []error
	for i, r := range rules {
		m, err := compile(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i, err))
			continue
		}
		t.rules = append(t.rules, m)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(t.rules) >= indexFrom {
		t.idx = buildIndex(t.rules)
	}
	return t, nil
}

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// Match returns the Target of the first rule matching the request, and that
// rule's index. host is the Host header or :authority (a port is ignored);
// path excludes the query string; header returns a request header's value
// by canonical name, nil when absent (header may be nil if no rule needs it).
func (t *Table) Match(host, path []byte, header func(name string) []byte) (target, rule int, ok bool) {
	host = hostOf(host)
	if t.idx != nil {
		if target, rule, ok, done := t.matchIndexed(host, path, header); done {
			return target, rule, ok
		}
	}
	for i := range t.rules {
		m := &t.rules[i]
		if m.matches(host, path, header) {
			return m.target, i, true
		}
	}
	return 0, -1, false
}

// matches reports whether the rule matches a request (host as hostOf
// returns it).
func (m *matcher) matches(host, path []byte, header func(name string) []byte) bool {
	if m.host != "" && !m.matchHost(host) {
		return false
	}
	if m.prefix {
		if len(path) < len(m.path) || string(path[:len(m.path)]) != m.path {
			return false
		}
	} else if m.path != "" && string(path) != m.path {
		return false
	}
	if m.header != "" && (header == nil || string(header(m.header)) != m.value) {
		return false
	}
	return true
}

// matchHost compares a host as hostOf returns it with the rule's.
func (m *matcher) matchHost(h []byte) bool {
	if m.wildcard {
		return len(h) > len(m.host) && equalFold(h[len(h)-len(m.host):], m.host)
	}
	return len(h) == len(m.host) && equalFold(h, m.host)
}

// hostOf strips the port and a trailing dot from a request host:
// "Example.com.:8080" gives "Example.com", "[::1]:8080" gives "::1". A host
// with several colons and no brackets is a bare IPv6 literal, kept whole.
func hostOf(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				return h[1:i]
			}
		}
		return h
	}
	colon := -1
	for i, c := range h {
		if c == ':' {
			if colon >= 0 {
				colon = -1 // bare IPv6: no port to cut
				break
			}
			colon = i
		}
	}
	if colon >= 0 {
		h = h[:colon]
	}
	if n := len(h); n > 0 && h[n-1] == '.' {
		h = h[:n-1]
	}
	return h
}

// equalFold compares b with lower-case ASCII s, folding b's ASCII case.
func equalFold(b []byte, s string) bool {
	for i := range len(s) {
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

// compile checks one rule and normalizes it.
func compile(r Rule) (matcher, error) {
	m := matcher{target: r.Target, value: r.HeaderValue}
	var errs []error
	bad := func(field, value, problem string) {
		errs = append(errs, fmt.Errorf("%s %q: %s: %w", field, value, problem, ErrInvalidRule))
	}
	if r.Host != "" {
		host, wildcard, problem := normalizeHost(r.Host)
		if problem != "" {
			bad("host", r.Host, problem)
		}
		m.host, m.wildcard = host, wildcard
	}
	switch {
	case r.Path != "" && r.PathPrefix != "":
		bad("path", r.Path, "path and path_prefix are exclusive")
	case r.Path != "":
		m.path = r.Path
	case r.PathPrefix != "":
		m.path, m.prefix = r.PathPrefix, true
	}
	if m.path != "" && m.path[0] != '/' {
		bad("path", m.path, `must start with "/"`)
	}
	switch {
	case r.HeaderName == "" && r.HeaderValue != "":
		bad("header_value", r.HeaderValue, "needs header_name")
	case r.HeaderName != "" && r.HeaderValue == "":
		bad("header_name", r.HeaderName, "needs header_value")
	case r.HeaderName != "":
		name, ok := canonicalHeader(r.HeaderName)
		if !ok {
			bad("header_name", r.HeaderName, "not a valid header name")
		}
		m.header = name
	}
	if r.Target < 0 {
		errs = append(errs, fmt.Errorf("target %d: must not be negative: %w", r.Target, ErrInvalidRule))
	}
	return m, errors.Join(errs...)
}

// normalizeHost lower-cases a rule's host, drops a trailing dot and brackets
// around an IPv6 literal (written canonically, as clients send it), and
// turns "*.example.com" into the suffix ".example.com". problem is empty
// when the host is valid.
func normalizeHost(h string) (host string, wildcard bool, problem string) {
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return "", false, "must not carry a port"
		}
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() {
			return "", false, "not an IPv6 address"
		}
		return a.String(), false, ""
	}
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() {
			return "", false, "must not carry a port"
		}
		return a.String(), false, ""
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		h, wildcard = rest, true
	}
	if h == "" {
		return "", false, "empty name"
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return "", false, "empty label"
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return "", false, `a wildcard is only allowed as a leading "*."`
				}
				return "", false, fmt.Sprintf("invalid character %q", c)
			}
		}
	}
	if wildcard {
		return "." + h, true, ""
	}
	return h, false, ""
}

// canonicalHeader returns name in canonical MIME form ("x-api-key" gives
// "X-Api-Key"), or false when it is not an HTTP token.
func canonicalHeader(name string) (string, bool) {
	b := []byte(name)
	upper := true
	for i, c := range b {
		if !isToken(c) {
			return "", false
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b), true
}

// isToken reports whether c may appear in an HTTP header name (RFC 9110).
func isToken(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
