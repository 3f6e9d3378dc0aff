package httpproxy

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// CORS is a route's cross-origin policy, answered at the edge: preflight
// requests never reach the server, and actual responses get the headers.
// Origins match exactly (scheme, host and port); "*" allows any origin but
// never with credentials (browsers refuse that combination, and echoing any
// origin with credentials would hand every site the user's session).
type CORS struct {
	AllowOrigins     []string // exact origins, or "*"
	AllowMethods     []string
	AllowHeaders     []string
	ExposeHeaders    []string
	AllowCredentials bool
	MaxAge           time.Duration

	methods, headers, expose, maxAge string // preformatted
}

// Prepare formats the policy's header values once.
func (c *CORS) Prepare() {
	c.methods = strings.Join(c.AllowMethods, ", ")
	c.headers = strings.Join(c.AllowHeaders, ", ")
	c.expose = strings.Join(c.ExposeHeaders, ", ")
	if c.MaxAge > 0 {
		c.maxAge = strconv.Itoa(int(c.MaxAge / time.Second))
	}
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin, or
// "" when the origin is not allowed.
func (c *CORS) allowOrigin(origin []byte) string {
	for _, o := range c.AllowOrigins {
		if o == "*" && !c.AllowCredentials {
			return "*"
		}
		if o == string(origin) {
			return o
		}
	}
	return ""
}

func (c *CORS) allowsMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST": // CORS-safelisted methods
		return true
	}
	for _, a := range c.AllowMethods {
		if a == string(m) {
			return true
		}
	}
	return false
}

// allowsHeaders checks a comma-separated Access-Control-Request-Headers list.
func (c *CORS) allowsHeaders(list []byte) bool {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		item = trimOWS(item)
		if len(item) == 0 {
			continue
		}
		ok := false
		for _, h := range c.AllowHeaders {
			if bytes.EqualFold(item, []byte(h)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// corsPreflight answers an OPTIONS preflight itself. It returns false when
// the request is not a preflight (it then goes to the server).
func (cc *clientConn) corsPreflight(c *CORS) (outcome, bool) {
	req := &cc.req
	if string(req.method) != "OPTIONS" {
		return outcome{}, false
	}
	origin := req.header("origin")
	method := req.header("access-control-request-method")
	if origin == nil || method == nil {
		return outcome{}, false
	}
	b := cc.out[:0]
	allow := c.allowOrigin(origin)
	if allow == "" || !c.allowsMethod(method) || !c.allowsHeaders(req.header("access-control-request-headers")) {
		// Refused: no CORS headers at all, so the browser blocks the call.
		b = append(b, "HTTP/1.1 403 Forbidden\r\nVary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\nContent-Length: 0\r\n"...)
		return cc.finishLocal(b, 403, ""), true
	}
	b = append(b, "HTTP/1.1 204 No Content\r\nVary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\nAccess-Control-Allow-Origin: "...)
	b = append(b, allow...)
	b = append(b, "\r\n"...)
	if c.AllowCredentials {
		b = append(b, "Access-Control-Allow-Credentials: true\r\n"...)
	}
	if c.methods != "" {
		b = append(b, "Access-Control-Allow-Methods: "...)
		b = append(b, c.methods...)
		b = append(b, "\r\n"...)
	}
	if c.headers != "" {
		b = append(b, "Access-Control-Allow-Headers: "...)
		b = append(b, c.headers...)
		b = append(b, "\r\n"...)
	}
	if c.maxAge != "" {
		b = append(b, "Access-Control-Max-Age: "...)
		b = append(b, c.maxAge...)
		b = append(b, "\r\n"...)
	}
	return cc.finishLocal(b, 204, ""), true
}

// finishLocal ends a response fulcrum makes itself (head b without its final
// CRLF), keeping the connection when the request left nothing unread.
func (cc *clientConn) finishLocal(b []byte, status int, body string) outcome {
	closeAfter := cc.req.framing != bodyNone || cc.req.close || cc.req.minor == 0
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	cc.out = b
	cc.setWriteDeadline(time.Now().Add(5 * time.Second))
	n, err := cc.conn.Write(b)
	return outcome{status: status, bytes: int64(n), err: err, replied: true, keep: !closeAfter && err == nil}
}

// corsHeaders appends the headers an actual cross-origin response gets, when
// its origin is allowed.
func (cc *clientConn) corsHeaders(c *CORS, b []byte) []byte {
	origin := cc.req.header("origin")
	b = append(b, "Vary: Origin\r\n"...)
	if origin == nil {
		return b
	}
	allow := c.allowOrigin(origin)
	if allow == "" {
		return b
	}
	b = append(b, "Access-Control-Allow-Origin: "...)
	b = append(b, allow...)
	b = append(b, "\r\n"...)
	if c.AllowCredentials {
		b = append(b, "Access-Control-Allow-Credentials: true\r\n"...)
	}
	if c.expose != "" {
		b = append(b, "Access-Control-Expose-Headers: "...)
		b = append(b, c.expose...)
		b = append(b, "\r\n"...)
	}
	return b
}

// isCORSField reports a response field that a route's CORS policy replaces.
func isCORSField(name []byte) bool {
	return len(name) > 13 && equalFold(name[:13], "access-contro")
}
