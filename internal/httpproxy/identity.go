package httpproxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
)

// ClientIP says how a pool's servers learn the client's address.
type ClientIP uint8

const (
	// ClientIPForwarded sets X-Forwarded-For, -Proto, -Host and RFC 7239
	// Forwarded (the default).
	ClientIPForwarded ClientIP = iota
	// ClientIPNone: the server sees only the balancer (non-transparent).
	ClientIPNone
	// ClientIPProxyV1 and ClientIPProxyV2 send a PROXY protocol header
	// first on every server connection.
	ClientIPProxyV1
	ClientIPProxyV2
	// ClientIPTransparent connects to the server from the client's own
	// address (IP_TRANSPARENT; needs CAP_NET_ADMIN and a return route).
	ClientIPTransparent
)

// private reports whether server connections carry one client's identity,
// so that they may not be shared between clients.
func (m ClientIP) private() bool { return m >= ClientIPProxyV1 }

// identity is the client address fulcrum settles on for one request: the
// peer's, or, when the peer is a trusted proxy, the one it forwarded.
type identity struct {
	peer        netip.AddrPort // the connection's remote end (after any PROXY header)
	peerText    []byte         // peer address as text (appended to X-Forwarded-For)
	peerTrusted bool

	client     netip.Addr // settled client address
	clientText []byte     // as text: hashing, logs, Forwarded
	derivedBy  string     // "peer", "x-forwarded-for" or "forwarded": how it was settled
}

func (id *identity) init(c net.Conn, trusted []netip.Prefix) {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		id.peer = ta.AddrPort()
	} else if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		id.peer = ap
	}
	id.peer = netip.AddrPortFrom(id.peer.Addr().Unmap(), id.peer.Port())
	id.peerText = id.peer.Addr().AppendTo(id.peerText[:0])
	id.peerTrusted = inPrefixes(id.peer.Addr(), trusted)
	id.reset()
}

// reset makes the peer the client.
func (id *identity) reset() {
	id.client = id.peer.Addr()
	id.clientText = append(id.clientText[:0], id.peerText...)
	id.derivedBy = "peer"
}

func inPrefixes(ip netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// settle derives the client address of a request. Forwarding headers count
// only from a trusted peer; then the client is the rightmost address that is
// not itself a trusted proxy (the leftmost ones could be forged by anyone).
func (id *identity) settle(r *request, trusted []netip.Prefix) {
	id.reset()
	if !id.peerTrusted {
		return
	}
	var xff [][]byte
	for i := range r.fields {
		if equalFold(r.fields[i].name, "x-forwarded-for") {
			xff = append(xff, r.fields[i].value)
		}
	}
	if ip, ok := rightmostUntrusted(xff, trusted, parseXFFItem); ok {
		id.setClient(ip, "x-forwarded-for")
		return
	}
	var fwd [][]byte
	for i := range r.fields {
		if equalFold(r.fields[i].name, "forwarded") {
			fwd = append(fwd, r.fields[i].value)
		}
	}
	if ip, ok := rightmostUntrusted(fwd, trusted, parseForwardedItem); ok {
		id.setClient(ip, "forwarded")
	}
}

func (id *identity) setClient(ip netip.Addr, by string) {
	id.client = ip.Unmap()
	id.clientText = id.client.AppendTo(id.clientText[:0])
	id.derivedBy = by
}

// rightmostUntrusted walks comma-separated lists from the right.
func rightmostUntrusted(values [][]byte, trusted []netip.Prefix, parse func([]byte) (netip.Addr, bool)) (netip.Addr, bool) {
	var last netip.Addr
	found := false
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for len(v) > 0 {
			var item []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				item, v = v[j+1:], v[:j]
			} else {
				item, v = v, nil
			}
			ip, ok := parse(trimOWS(item))
			if !ok {
				return last, found // garbage: trust nothing left of it
			}
			last, found = ip, true
			if !inPrefixes(ip.Unmap(), trusted) {
				return ip, true
			}
		}
	}
	return last, found
}

// parseXFFItem accepts "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80".
func parseXFFItem(b []byte) (netip.Addr, bool) {
	s := string(b)
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

// parseForwardedItem takes the for= parameter of one Forwarded element.
func parseForwardedItem(b []byte) (netip.Addr, bool) {
	for len(b) > 0 {
		var pair []byte
		if j := bytes.IndexByte(b, ';'); j >= 0 {
			pair, b = b[:j], b[j+1:]
		} else {
			pair, b = b, nil
		}
		pair = trimOWS(pair)
		if len(pair) > 4 && equalFold(pair[:4], "for=") {
			v := bytes.Trim(pair[4:], `"`)
			if len(v) > 0 && v[0] == '[' {
				if end := bytes.IndexByte(v, ']'); end > 0 {
					v = v[1:end]
				}
			}
			return parseXFFItem(v)
		}
	}
	return netip.Addr{}, false
}

// proxyHeader is the PROXY protocol header announcing the settled client to
// a server.
func (cc *clientConn) proxyHeader(version byte) ([]byte, error) {
	port := cc.id.peer.Port()
	if cc.id.derivedBy != "peer" {
		port = 0
	}
	return tcpproxy.ProxyHeader(version, netip.AddrPortFrom(cc.id.client, port), cc.conn.LocalAddr())
}

// dialPrivate opens a server connection that carries the client's identity:
// a PROXY header first, or a source address that is the client's own.
func (cc *clientConn) dialPrivate(ctx context.Context, t *Target, up *Upstream) (*upConn, error) {
	d := cc.h.dialer
	if t.ClientIP == ClientIPTransparent {
		tcpproxy.Transparent(&d, cc.id.client)
	}
	uc, err := up.dialWith(ctx, &d)
	if err != nil {
		return nil, err
	}
	uc.client = cc.id.client
	if t.ClientIP == ClientIPProxyV1 || t.ClientIP == ClientIPProxyV2 {
		v := byte(1)
		if t.ClientIP == ClientIPProxyV2 {
			v = 2
		}
		hdr, err := cc.proxyHeader(v)
		if err == nil {
			_, err = uc.conn.Write(hdr)
		}
		if err != nil {
			uc.close()
			return nil, &DialError{Err: fmt.Errorf("sending PROXY header: %w", err)}
		}
	}
	return uc, nil
}
