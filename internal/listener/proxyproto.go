package listener

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
)

// Errors of the PROXY protocol reader. A connection that causes one is closed
// without a byte being forwarded.
var (
	ErrUntrustedProxy = errors.New("PROXY header from an address outside trusted_proxies")
	ErrBadProxyHeader = errors.New("malformed PROXY protocol header")
)

// maxProxyHeader bounds what is read for a PROXY header: 107 bytes for v1,
// 16 + 65535 for v2 in theory; fulcrum accepts TLVs up to 2 KiB.
const maxProxyHeader = 16 + 2048

var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader reads exactly one PROXY protocol v1 or v2 header from c and
// nothing more, so the bytes after it stay in the socket for the handler. It
// peeks to learn the header's length, then reads that many bytes.
func readProxyHeader(c net.Conn, timeout time.Duration) (*proxyproto.Header, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	n, err := proxyHeaderLen(c)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("reading PROXY header: %w", err)
	}
	h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(buf)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadProxyHeader, err)
	}
	return h, nil
}

// proxyHeaderLen peeks at the socket until it knows how long the header is.
func proxyHeaderLen(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.New("PROXY protocol needs a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 16+216) // v2 header with IPv6 addresses, or all of v1
	var n, need int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		m, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			perr = err
			return true
		case m == 0:
			perr = io.ErrUnexpectedEOF
			return true
		}
		n = m
		need, perr = headerLen(buf[:n])
		// Wait for more while the length is unknown and more can come.
		return perr != nil || need > 0 || n == len(buf)
	})
	switch {
	case err != nil:
		return 0, err
	case perr != nil:
		return 0, perr
	case need <= 0:
		return 0, ErrBadProxyHeader
	}
	return need, nil
}

// headerLen returns the header's length from its first bytes, 0 when more
// bytes are needed to tell, or an error when they cannot start a header.
func headerLen(b []byte) (int, error) {
	switch {
	case len(b) >= 6 && string(b[:6]) == "PROXY ":
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if i > 106 {
				return 0, ErrBadProxyHeader
			}
			return i + 1, nil
		}
		if len(b) > 107 {
			return 0, ErrBadProxyHeader
		}
		return 0, nil
	case len(b) < 6 && bytes.HasPrefix([]byte("PROXY "), b):
		return 0, nil
	case len(b) >= 16 && bytes.Equal(b[:12], v2sig):
		n := 16 + (int(b[14])<<8 | int(b[15]))
		if n > maxProxyHeader {
			return 0, ErrBadProxyHeader
		}
		return n, nil
	case len(b) < 16 && bytes.HasPrefix(b, v2sig[:min(len(b), 12)]):
		return 0, nil
	}
	return 0, ErrBadProxyHeader
}

// proxiedConn is a connection whose addresses come from a PROXY header. It
// keeps the socket's own abilities (half-close, raw access) visible.
type proxiedConn struct {
	net.Conn
	remote, local net.Addr
}

func (p *proxiedConn) RemoteAddr() net.Addr { return p.remote }
func (p *proxiedConn) LocalAddr() net.Addr  { return p.local }

// CloseWrite half-closes the underlying connection.
func (p *proxiedConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return p.Conn.Close()
}

// SyscallConn exposes the socket for readiness waits.
func (p *proxiedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := p.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

// PeerAddr is the address of the proxy that sent the PROXY header.
func (p *proxiedConn) PeerAddr() net.Addr { return p.Conn.RemoteAddr() }

// acceptProxy reads the PROXY header of a connection from a trusted proxy and
// returns the connection as seen through it.
func acceptProxy(c net.Conn, trusted []netip.Prefix, timeout time.Duration) (net.Conn, error) {
	if !Trusted(c.RemoteAddr(), trusted) {
		return nil, ErrUntrustedProxy
	}
	h, err := readProxyHeader(c, timeout)
	if err != nil {
		return nil, err
	}
	if h.Command.IsLocal() {
		return c, nil // the proxy's own connection (a health check)
	}
	src, dst, ok := h.TCPAddrs()
	if !ok {
		return nil, fmt.Errorf("%w: not a TCP address", ErrBadProxyHeader)
	}
	return &proxiedConn{Conn: c, remote: src, local: dst}, nil
}

// Trusted reports whether addr is inside one of the prefixes.
func Trusted(addr net.Addr, prefixes []netip.Prefix) bool {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
