package httpproxy

import "bytes"

// request is a parsed client request head. Its byte slices alias the
// connection's read buffer and are valid until the next read.
type request struct {
	method []byte
	target []byte // as sent
	path   []byte // origin-form: path and query ("*" for OPTIONS *)
	minor  int    // HTTP/1.minor
	host   []byte // from an absolute-form target, else the Host header

	fields     []field  // every header field, in order
	connection [][]byte // values of Connection header fields

	framing framing
	length  int64 // Content-Length when framing is bodyLength

	close     bool // the client asked to close after this exchange
	upgrade   bool // a WebSocket upgrade
	expect100 bool // Expect: 100-continue
}

func (r *request) reset() {
	fields, conn := r.fields[:0], r.connection[:0]
	*r = request{fields: fields, connection: conn}
}

// header returns the value of the first field named name (any case), or nil.
func (r *request) header(name string) []byte {
	for i := range r.fields {
		if bytes.EqualFold(r.fields[i].name, []byte(name)) {
			return r.fields[i].value
		}
	}
	return nil
}

// idempotent reports whether the method may be retried after it was sent.
func (r *request) idempotent() bool {
	switch string(r.method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

func (r *request) isHead() bool { return string(r.method) == "HEAD" }

// findHeadEnd returns the length of the head at the start of b (through the
// empty line that ends it), or -1 when b does not yet hold a whole head. It
// accepts LF-only ends so that the parser can refuse them with a clear error
// instead of waiting for a CRLF that will never come. from is where to resume
// scanning.
func findHeadEnd(b []byte, from int) int {
	// The previous scan may have stopped inside the "\n\r\n" that ends
	// the head: back up over it.
	from = max(from-3, 0)
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return -1
		}
		i += from
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
		from = i + 1
	}
}

// nextLine splits b at the first CRLF. A bare LF or a CR not followed by LF
// is an error: the request head must use CRLF throughout.
func nextLine(b []byte) (line, rest []byte, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, ErrBadHeader
	}
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, ErrBareLF
	}
	// A CR inside the line is caught by the checks of what the line holds
	// (tokens, target, values); see badCR.
	return b[:i-1], b[i+1:], nil
}

// parseRequest parses the head in b (as found by findHeadEnd) strictly into r.
func parseRequest(b []byte, r *request) error {
	r.reset()
	// RFC 9112 2.2: a server should ignore empty lines before the request line.
	for len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		b = b[2:]
	}
	line, rest, err := nextLine(b)
	if err != nil {
		return err
	}
	if err := r.parseRequestLine(line); err != nil {
		return badCR(line, err)
	}
	var sawCL, sawTE, hostCount int
	for {
		line, rest, err = nextLine(rest)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return ErrBadHeader // includes whitespace before the colon
		}
		raw := line[colon+1:]
		if !validValue(raw) {
			return badCR(raw, ErrBadHeader)
		}
		f := field{name: line[:colon], value: trimOWS(raw)}
		if len(r.fields) == maxHeaders {
			return ErrTooManyHeaders
		}
		r.fields = append(r.fields, f)
		switch len(f.name) {
		case 4:
			if equalFold(f.name, "host") {
				hostCount++
				if hostCount > 1 {
					return ErrDupHost
				}
				if r.host == nil { // an absolute-form target wins
					if !validHost(f.value) {
						return ErrBadHost
					}
					r.host = f.value
				}
			}
		case 6:
			if equalFold(f.name, "expect") && equalFold(f.value, "100-continue") {
				r.expect100 = true
			}
		case 7:
			if equalFold(f.name, "upgrade") && hasToken(f.value, "websocket") {
				r.upgrade = true
			}
		case 10:
			if equalFold(f.name, "connection") {
				r.connection = append(r.connection, f.value)
			}
		case 14:
			if equalFold(f.name, "content-length") {
				sawCL++
				if sawCL > 1 {
					return ErrDupContentLen
				}
				n, ok := parseLength(f.value)
				if !ok {
					return ErrBadContentLen
				}
				r.length = n
			}
		case 17:
			if equalFold(f.name, "transfer-encoding") {
				sawTE++
				// Exactly "chunked": no lists, no other codings, no stray
				// whitespace around it.
				if sawTE > 1 || !equalFold(raw, "chunked") && !equalFold(raw, " chunked") {
					return ErrBadTE
				}
			}
		}
	}
	if len(rest) != 0 {
		return ErrHeaderBytesBody
	}
	switch {
	case sawTE > 0 && sawCL > 0:
		return ErrTEAndCL
	case sawTE > 0 && r.minor == 0:
		return ErrTEHTTP10
	case sawTE > 0:
		r.framing = bodyChunked
	case sawCL > 0 && r.length > 0:
		r.framing = bodyLength
	}
	if r.minor == 1 && hostCount == 0 && r.host == nil {
		return ErrMissingHost
	}
	r.close = r.minor == 0
	for _, v := range r.connection {
		if hasToken(v, "close") {
			r.close = true
		} else if r.minor == 0 && hasToken(v, "keep-alive") {
			r.close = false
		}
	}
	if r.upgrade {
		r.upgrade = r.minor == 1 && r.connectionHas("upgrade") && string(r.method) == "GET"
	}
	return nil
}

// badCR names a bare CR as the error when the refused line holds one.
func badCR(line []byte, err error) error {
	if bytes.IndexByte(line, '\r') >= 0 {
		return ErrBareCR
	}
	return err
}

// connectionHas reports whether a Connection field lists token t.
func (r *request) connectionHas(t string) bool {
	for _, v := range r.connection {
		if hasToken(v, t) {
			return true
		}
	}
	return false
}

func (r *request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return ErrBadRequestLine
	}
	r.method = line[:sp1]
	if !isToken(r.method) {
		return ErrBadRequestLine
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return ErrBadRequestLine
	}
	r.target = rest[:sp2]
	proto := rest[sp2+1:]
	switch string(proto) {
	case "HTTP/1.1":
		r.minor = 1
	case "HTTP/1.0":
		r.minor = 0
	default:
		// A well-formed version other than 1.0 and 1.1 is 505; anything
		// else (trailing garbage, lower case) is a malformed line.
		if len(proto) == 8 && string(proto[:5]) == "HTTP/" && proto[6] == '.' &&
			'0' <= proto[5] && proto[5] <= '9' && '0' <= proto[7] && proto[7] <= '9' {
			return ErrBadVersion
		}
		return ErrBadRequestLine
	}
	for _, c := range r.target {
		if c <= ' ' || c >= 0x7f {
			return ErrBadTarget
		}
	}
	if string(r.method) == "CONNECT" {
		return ErrMethodCONNECT
	}
	switch {
	case r.target[0] == '/':
		r.path = r.target
	case len(r.target) == 1 && r.target[0] == '*' && string(r.method) == "OPTIONS":
		r.path = r.target
	default:
		return r.parseAbsolute()
	}
	return nil
}

// parseAbsolute handles an absolute-form target (http://host/path): its
// authority replaces the Host header (RFC 9112 3.2.2).
func (r *request) parseAbsolute() error {
	t := r.target
	var rest []byte
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		rest = t[7:]
	case len(t) > 8 && equalFold(t[:8], "https://"):
		rest = t[8:]
	default:
		return ErrBadTarget
	}
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if !validHost(host) || len(host) == 0 {
		return ErrBadTarget
	}
	r.host = host
	r.path = rest[end:]
	if len(r.path) == 0 || r.path[0] == '?' {
		// "http://h" and "http://h?q" mean "/" and "/?q"; keep them as
		// they are and let the writer add the slash.
		r.path = rest[end:]
	}
	return nil
}

// hostChar marks the bytes allowed in a uri-host with an optional port.
var hostChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~%!$&'()*+,;=:[]" {
		t[c] = true
	}
	return t
}()

// validHost accepts a uri-host with an optional port: registered names, IPv4
// and bracketed IPv6 literals. Userinfo, paths and whitespace are refused.
func validHost(h []byte) bool {
	for _, c := range h {
		if !hostChar[c] {
			return false
		}
	}
	return true
}
