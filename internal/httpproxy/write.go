package httpproxy

import (
	"bytes"
	"strconv"
)

// hopByHop reports whether a field applies to one connection only and is
// never forwarded (RFC 9110 7.6.1), or is one the proxy writes itself.
func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 4:
		return equalFold(name, "host")
	case 6:
		return equalFold(name, "expect")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 14:
		return equalFold(name, "content-length")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 19:
		return equalFold(name, "proxy-authorization") || equalFold(name, "proxy-authenticate")
	}
	return false
}

// framingAlias reports a field name that some servers read as a framing
// field: Content_Length, Transfer_Encoding (servers that map "_" to "-",
// as CGI does). Forwarding one could make the server see two framings.
func framingAlias(name []byte) bool {
	if len(name) != 14 && len(name) != 17 || bytes.IndexByte(name, '_') < 0 {
		return false
	}
	var buf [17]byte
	n := copy(buf[:], name)
	for i := range n {
		if buf[i] == '_' {
			buf[i] = '-'
		}
	}
	return equalFold(buf[:n], "content-length") || equalFold(buf[:n], "transfer-encoding")
}

// forwarding reports whether a field carries client identity set by proxies.
func forwarding(name []byte) bool {
	switch len(name) {
	case 9:
		return equalFold(name, "forwarded")
	case 15:
		return equalFold(name, "x-forwarded-for") || equalFold(name, "x-real-ip")
	case 16:
		return equalFold(name, "x-forwarded-host")
	case 17:
		return equalFold(name, "x-forwarded-proto")
	}
	return false
}

// namedByConnection reports whether a Connection field lists name.
func namedByConnection(conn [][]byte, name []byte) bool {
	for _, v := range conn {
		for len(v) > 0 {
			var item []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				item, v = v, nil
			}
			if bytes.EqualFold(trimOWS(item), name) {
				return true
			}
		}
	}
	return false
}

// writeRequestHead builds the outbound request head: the client's request
// line and fields less hop-by-hop ones, then Host, framing and forwarding
// fields written by the proxy.
func (cc *clientConn) writeRequestHead(cfg *Config, t *Target, up *Upstream, b []byte) []byte {
	req := &cc.req
	b = append(b, req.method...)
	b = append(b, ' ')
	if len(req.path) == 0 || req.path[0] == '?' {
		b = append(b, '/')
	}
	b = append(b, req.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if len(req.host) > 0 {
		b = append(b, req.host...)
	} else {
		b = append(b, up.srv.Address()...)
	}
	b = append(b, "\r\n"...)

	// Forwarding fields from the client pass only from a trusted proxy, and
	// only to servers that learn the client's address from them.
	forwarded := t.ClientIP == ClientIPForwarded
	trusted := cc.id.peerTrusted && forwarded
	var proto, fhost, fwd []byte
	cc.xff = cc.xff[:0]
	for i := range req.fields {
		f := &req.fields[i]
		if hopByHop(f.name) || framingAlias(f.name) {
			continue
		}
		if forwarding(f.name) {
			if !trusted {
				continue
			}
			switch {
			case equalFold(f.name, "x-forwarded-for"):
				cc.xff = append(cc.xff, f.value)
				continue
			case equalFold(f.name, "x-forwarded-proto"):
				proto = f.value
				continue
			case equalFold(f.name, "x-forwarded-host"):
				fhost = f.value
				continue
			case equalFold(f.name, "forwarded"):
				fwd = f.value
				continue
			}
		}
		if len(req.connection) > 0 && namedByConnection(req.connection, f.name) {
			continue
		}
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	switch req.framing {
	case bodyLength:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.length, 10)
		b = append(b, "\r\n"...)
	case bodyChunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if req.upgrade {
		b = append(b, "Connection: Upgrade\r\nUpgrade: "...)
		b = append(b, req.header("upgrade")...)
		b = append(b, "\r\n"...)
	}

	if !forwarded {
		return append(b, "\r\n"...)
	}
	b = append(b, "X-Forwarded-For: "...)
	for _, v := range cc.xff {
		b = append(b, v...)
		b = append(b, ", "...)
	}
	b = append(b, cc.id.peerText...)
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	scheme := "http"
	if cfg.TLS {
		scheme = "https"
	}
	if proto != nil {
		b = append(b, proto...)
	} else {
		b = append(b, scheme...)
	}
	if fhost != nil || len(req.host) > 0 {
		b = append(b, "\r\nX-Forwarded-Host: "...)
		if fhost != nil {
			b = append(b, fhost...)
		} else {
			b = append(b, req.host...)
		}
	}
	b = append(b, "\r\nForwarded: "...)
	if fwd != nil {
		b = append(b, fwd...)
		b = append(b, ", "...)
	}
	b = append(b, "for="...)
	if cc.id.peer.Addr().Is6() {
		b = append(b, "\"["...)
		b = append(b, cc.id.peerText...)
		b = append(b, "]\""...)
	} else {
		b = append(b, cc.id.peerText...)
	}
	if len(req.host) > 0 {
		b = append(b, ";host=\""...)
		b = append(b, req.host...)
		b = append(b, '"')
	}
	b = append(b, ";proto="...)
	b = append(b, scheme...)
	b = append(b, "\r\n\r\n"...)
	return b
}

// inlineBody is the largest response body sent in the same write as its head.
const inlineBody = 16 << 10

// writeResponse relays the response head and body to the client. werr is a
// failure writing to the client, rerr one reading from the server.
func (cc *clientConn) writeResponse(cfg *Config, uc *upConn, resp *response, closeClient bool) (n int64, werr, rerr error) {
	req := &cc.req
	b := cc.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(resp.status), 10)
	b = append(b, ' ')
	b = append(b, resp.reason...)
	b = append(b, "\r\n"...)
	sawCL := false
	for i := range resp.fields {
		f := &resp.fields[i]
		if hopByHop(f.name) {
			// Content-Length of a bodiless response (HEAD, 304) describes
			// the representation and passes through once.
			if resp.framing == bodyNone && !sawCL && equalFold(f.name, "content-length") {
				sawCL = true
			} else {
				continue
			}
		}
		if len(resp.connection) > 0 && namedByConnection(resp.connection, f.name) {
			continue
		}
		if cc.cors != nil && isCORSField(f.name) {
			continue // the route's policy speaks for the server
		}
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if cc.cors != nil {
		b = cc.corsHeaders(cc.cors, b)
	}
	b = append(b, cc.extra...)
	// HTTP/1.0 clients get no chunked coding: the body runs to close.
	chunkOut := req.minor == 1
	switch resp.framing {
	case bodyLength:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, resp.length, 10)
		b = append(b, "\r\n"...)
	case bodyChunked, bodyToClose:
		if chunkOut {
			b = append(b, "Transfer-Encoding: chunked\r\n"...)
		} else {
			closeClient = true
		}
	}
	if closeClient {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)

	idle := cfg.ClientIdle
	rd := &uc.rd
	if resp.framing == bodyLength && resp.length <= inlineBody {
		if int64(len(rd.buffered())) >= resp.length {
			b = append(b, rd.buffered()[:resp.length]...)
			rd.discard(int(resp.length))
			cc.out = b
			cc.extendWriteDeadline(idle)
			m, err := cc.conn.Write(b)
			return int64(m), err, nil
		}
	}
	cc.out = b
	cc.extendWriteDeadline(idle)
	m, err := cc.conn.Write(b)
	n = int64(m)
	if err != nil {
		return n, err, nil
	}
	var body int64
	switch resp.framing {
	case bodyLength:
		body, err = copyN(cc.conn, rd, resp.length, idle)
	case bodyChunked:
		body, err = copyChunked(cc.conn, rd, false, chunkOut, 0, idle)
	case bodyToClose:
		body, err = copyToClose(cc.conn, rd, chunkOut, idle)
	}
	n += body
	if err != nil {
		// Tell apart which side failed: a timeout or error on the server's
		// side ends the server connection; one on the client's does too,
		// but is not the server's fault.
		if serverSide(err, uc) {
			return n, nil, err
		}
		return n, err, nil
	}
	return n, nil, nil
}
