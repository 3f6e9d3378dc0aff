package persist

import (
	"errors"
	"fmt"
	"strings"
)

// ErrURLMode is returned (wrapped) by ParseURLMode for an unknown mode.
var ErrURLMode = errors.New("persist: unknown url mode")

type urlKind uint8

const (
	urlNone urlKind = iota
	urlASP
	urlJSession
	urlQuery
)

// URLMode finds a session id in a URL. The zero value finds none.
type URLMode struct {
	kind  urlKind
	param string
}

// ParseURLMode parses the config value of persistence.url: "asp" (the
// ASP.NET cookieless segment /(S(id))/, also inside (A(..)S(id)F(..))),
// "jsessionid" (the ;jsessionid=id path parameter, name case-insensitive)
// or "query:NAME" (query parameter NAME, exact and not percent-decoded).
func ParseURLMode(s string) (URLMode, error) {
	switch {
	case s == "asp":
		return URLMode{kind: urlASP}, nil
	case s == "jsessionid":
		return URLMode{kind: urlJSession}, nil
	case strings.HasPrefix(s, "query:") && len(s) > len("query:"):
		return URLMode{kind: urlQuery, param: s[len("query:"):]}, nil
	}
	return URLMode{}, fmt.Errorf("%w %q: want asp, jsessionid or query:NAME", ErrURLMode, s)
}

// String returns the mode as written in the configuration.
func (m URLMode) String() string {
	switch m.kind {
	case urlASP:
		return "asp"
	case urlJSession:
		return "jsessionid"
	case urlQuery:
		return "query:" + m.param
	}
	return ""
}

// SessionID returns the session id in target: a request-target (origin
// form "/a/b?q" or absolute form "http://h/a?q"), or a response Location
// header value, which may also be relative ("page.aspx;jsessionid=x"). The
// fragment is ignored; the path ends at the first '?'. The id is a
// sub-slice of target, never empty; nothing is allocated.
func (m URLMode) SessionID(target []byte) ([]byte, bool) {
	target, _ = cut(target, '#')
	target = skipAuthority(target)
	path, query := cut(target, '?')
	var id []byte
	switch m.kind {
	case urlASP:
		id = aspID(path)
	case urlJSession:
		id = jsessionID(path)
	case urlQuery:
		id = queryParam(query, m.param)
	}
	return id, len(id) > 0
}

// skipAuthority drops "scheme://authority" from an absolute URL, leaving
// the path and query. Anything else (origin form, a relative reference) is
// returned as is: a request-target starting with "//" is a path.
func skipAuthority(u []byte) []byte {
	for i, c := range u {
		if c == ':' && i > 0 {
			rest := u[i+1:]
			if len(rest) < 2 || rest[0] != '/' || rest[1] != '/' {
				return u
			}
			rest = rest[2:]
			for j, c := range rest {
				if c == '/' || c == '?' {
					return rest[j:]
				}
			}
			return nil
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return u
		}
	}
	return u
}

// aspID finds the S(id) item of an ASP.NET cookieless segment: a path
// segment "(" followed by one or more X(value) items and ")".
func aspID(path []byte) []byte {
	for len(path) > 0 {
		var seg []byte
		seg, path = cut(path, '/')
		if len(seg) < 5 || seg[0] != '(' || seg[len(seg)-1] != ')' {
			continue
		}
		in := seg[1 : len(seg)-1]
		for len(in) >= 3 && in[0] >= 'A' && in[0] <= 'Z' && in[1] == '(' {
			val, rest := cut(in[2:], ')')
			if rest == nil && len(val) == len(in)-2 {
				break // no closing parenthesis
			}
			if in[0] == 'S' {
				return val
			}
			in = rest
		}
	}
	return nil
}

// jsessionID finds a ";jsessionid=" path parameter; the id runs to the next
// ';' or '/'.
func jsessionID(path []byte) []byte {
	const name = "jsessionid="
	for i := 0; i < len(path); i++ {
		if path[i] != ';' || len(path)-i-1 < len(name) || !equalFold(path[i+1:i+1+len(name)], name) {
			continue
		}
		v := path[i+1+len(name):]
		for j, c := range v {
			if c == ';' || c == '/' {
				return v[:j]
			}
		}
		return v
	}
	return nil
}

// queryParam returns the first value of parameter name in query.
func queryParam(query []byte, name string) []byte {
	for len(query) > 0 {
		var pair []byte
		pair, query = cut(query, '&')
		k, v := cut(pair, '=')
		if string(k) == name && len(v) > 0 {
			return v
		}
	}
	return nil
}
