package persist

import (
	"time"
)

// CookieValue returns the value of the cookie called name in a Cookie
// header value ("a=1; ASP.NET_SessionId=xyz"), parsed as RFC 6265 section
// 5.4 sends it but leniently: pairs are split on ';', spaces and tabs around
// names and values are dropped, a value in double quotes loses its quotes,
// and a pair without '=' is skipped. Names match exactly (case-sensitive);
// the first match wins. An empty value counts as absent: it cannot name a
// session. The value is a sub-slice of header; nothing is allocated.
func CookieValue(header []byte, name string) ([]byte, bool) {
	for len(header) > 0 {
		var pair []byte
		pair, header = cut(header, ';')
		k, v, ok := splitPair(pair)
		if ok && string(k) == name {
			v = unquote(v)
			return v, len(v) > 0
		}
	}
	return nil, false
}

// CookieAction is what a Set-Cookie header does to one cookie.
type CookieAction uint8

const (
	// CookieOther means the header is about another cookie (or unparsable).
	CookieOther CookieAction = iota
	// CookieSet means the cookie is set to the returned value.
	CookieSet
	// CookieDelete means the cookie is removed: an empty value, Max-Age of
	// zero or less, or (without Max-Age) an Expires date not after now.
	CookieDelete
)

// ParseSetCookie reads one Set-Cookie header value ("name=value; Path=/;
// Max-Age=0") and reports what it does to the cookie called name, following
// RFC 6265 section 5.2: Max-Age wins over Expires, attribute names are
// case-insensitive, an attribute that does not parse is ignored. The value
// is a sub-slice of v. Only an Expires attribute allocates (date parsing).
func ParseSetCookie(v []byte, name string, now time.Time) (value []byte, act CookieAction) {
	pair, attrs := cut(v, ';')
	k, val, ok := splitPair(pair)
	if !ok || string(k) != name {
		return nil, CookieOther
	}
	val = unquote(val)
	maxAge, hasMaxAge := 0, false
	expired := false
	for len(attrs) > 0 {
		var a []byte
		a, attrs = cut(attrs, ';')
		an, av, _ := splitPair(a)
		switch {
		case equalFold(an, "max-age"):
			if n, ok := parseMaxAge(av); ok {
				maxAge, hasMaxAge = n, true
			}
		case equalFold(an, "expires"):
			if t, ok := parseCookieDate(av); ok {
				expired = !t.After(now)
			}
		}
	}
	switch {
	case len(val) == 0:
		return nil, CookieDelete
	case hasMaxAge:
		if maxAge <= 0 {
			return nil, CookieDelete
		}
	case expired:
		return nil, CookieDelete
	}
	return val, CookieSet
}

// parseMaxAge parses a Max-Age value: an optional '-' and digits. Values too
// large saturate.
func parseMaxAge(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<40 {
			n = n*10 + int(c-'0')
		}
	}
	if neg {
		return -n, true
	}
	return n, true
}

// cookieDates are the Expires layouts seen in practice: RFC 1123 (what
// browsers and most servers send), its variant with dashes (Java, PHP),
// RFC 850 and asctime.
var cookieDates = []string{
	"Mon, 02 Jan 2006 15:04:05 MST",
	"Mon, 02-Jan-2006 15:04:05 MST",
	"Monday, 02-Jan-06 15:04:05 MST",
	"Mon Jan _2 15:04:05 2006",
}

func parseCookieDate(b []byte) (time.Time, bool) {
	if len(b) > 64 {
		return time.Time{}, false
	}
	s := string(b)
	for _, layout := range cookieDates {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// cut splits b at the first sep.
func cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// splitPair splits "name=value" and trims spaces and tabs around both.
func splitPair(pair []byte) (name, value []byte, ok bool) {
	k, v := cut(pair, '=')
	if len(v) == 0 && len(k) == len(pair) {
		return trimSpace(k), nil, false
	}
	return trimSpace(k), trimSpace(v), true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// equalFold compares b with the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
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
