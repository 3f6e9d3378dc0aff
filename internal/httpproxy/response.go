package httpproxy

import (
	"bytes"
	"errors"
)

// Errors in a server's response head. They end the exchange with 502.
var (
	ErrBadStatusLine    = errors.New("malformed status line")
	ErrBadRespHeader    = errors.New("malformed response header")
	ErrRespTooLarge     = errors.New("response head too large")
	ErrRespContentLen   = errors.New("conflicting Content-Length in response")
	ErrRespBadChunk     = errors.New("malformed chunked response body")
	ErrUpstreamProtocol = errors.New("server broke HTTP framing")
)

// response is a parsed server response head; slices alias the upstream
// connection's buffer.
type response struct {
	minor  int
	status int
	reason []byte
	fields []field

	connection [][]byte
	framing    framing
	length     int64
	close      bool // the server will close (or we must, to delimit the body)
	upgrade    bool
}

func (r *response) reset() {
	fields, conn := r.fields[:0], r.connection[:0]
	*r = response{fields: fields, connection: conn}
}

// cutLine splits b at the first LF, accepting CRLF or a bare LF: servers are
// read tolerantly.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

// parseResponse parses a server's response head tolerantly: LF-only line
// ends, a missing reason phrase and HTTP/1.0 are fine. What stays strict is
// what decides framing, so that a confused server can never make one
// response look like two.
func parseResponse(b []byte, r *response, head bool) error {
	r.reset()
	line, rest, ok := cutLine(b)
	if !ok {
		return ErrBadStatusLine
	}
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return ErrBadStatusLine
	}
	switch line[7] {
	case '0':
		r.minor = 0
	case '1':
		r.minor = 1
	default:
		return ErrBadStatusLine
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return ErrBadStatusLine
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if r.status < 100 {
		return ErrBadStatusLine
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return ErrBadStatusLine
		}
		r.reason = line[13:]
		if !validValue(r.reason) {
			return ErrBadStatusLine
		}
	}
	var clSeen, te bool
	var teChunked bool
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return ErrBadRespHeader
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrBadRespHeader // obs-fold: refuse rather than guess
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return ErrBadRespHeader
		}
		f := field{name: line[:colon], value: trimOWS(line[colon+1:])}
		if !validValue(f.value) {
			return ErrBadRespHeader
		}
		if len(r.fields) == maxHeaders {
			return ErrBadRespHeader
		}
		r.fields = append(r.fields, f)
		switch {
		case equalFold(f.name, "content-length"):
			n, ok := parseLength(f.value)
			if !ok || clSeen && n != r.length {
				return ErrRespContentLen
			}
			clSeen, r.length = true, n
		case equalFold(f.name, "transfer-encoding"):
			te = true
			// The final coding decides: chunked last means chunked framing;
			// anything else is delimited by close (RFC 9112 6.3).
			teChunked = lastTokenIs(f.value, "chunked")
		case equalFold(f.name, "connection"):
			r.connection = append(r.connection, f.value)
		case equalFold(f.name, "upgrade"):
			r.upgrade = true
		}
	}
	r.close = r.minor == 0
	for _, v := range r.connection {
		if hasToken(v, "close") {
			r.close = true
		} else if hasToken(v, "keep-alive") {
			r.close = false
		}
	}
	switch {
	case head || r.status < 200 || r.status == 204 || r.status == 304:
		r.framing = bodyNone
	case te && teChunked:
		r.framing = bodyChunked
	case te:
		r.framing, r.close = bodyToClose, true
	case clSeen && r.length == 0:
		r.framing = bodyNone
	case clSeen:
		r.framing = bodyLength
	default:
		r.framing, r.close = bodyToClose, true
	}
	if r.framing != bodyLength {
		r.length = 0
	}
	return nil
}

// lastTokenIs reports whether the last item of comma list v is t.
func lastTokenIs(v []byte, t string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(trimOWS(v), t)
}

// findRespHeadEnd is findHeadEnd for responses; LF-only heads are normal here.
func findRespHeadEnd(b []byte, from int) int { return findHeadEnd(b, from) }
