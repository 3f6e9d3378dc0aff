package tcpproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/pires/go-proxyproto"
)

// ProxyHeader formats a PROXY protocol header (version 1 or 2) announcing
// client as the source and local (the address the client connected to) as
// the destination.
func ProxyHeader(version byte, client netip.AddrPort, local net.Addr) ([]byte, error) {
	src := net.TCPAddrFromAddrPort(netip.AddrPortFrom(client.Addr().Unmap(), client.Port()))
	dst, _ := local.(*net.TCPAddr)
	if dst == nil {
		dst = &net.TCPAddr{IP: net.IPv4zero}
	}
	// One header carries one family: map the destination to the source's.
	if (src.IP.To4() == nil) != (dst.IP.To4() == nil) {
		if src.IP.To4() == nil {
			dst = &net.TCPAddr{IP: dst.IP.To16(), Port: dst.Port}
		} else {
			dst = &net.TCPAddr{IP: net.IPv4zero, Port: dst.Port}
		}
	}
	return proxyproto.HeaderProxyFromAddrs(version, src, dst).Format()
}

// Transparent makes d connect from the client's own address: the socket is
// marked IP_TRANSPARENT so it may bind an address that is not local.
func Transparent(d *net.Dialer, client netip.Addr) {
	d.LocalAddr = &net.TCPAddr{IP: client.Unmap().AsSlice()}
	d.Control = transparentControl
}

func transparentControl(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if network == "tcp6" {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IPV6, ipv6Transparent, 1)
			return
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_TRANSPARENT, 1)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting IP_TRANSPARENT: %w", serr)
	}
	return nil
}

// ipv6Transparent is IPV6_TRANSPARENT from linux/in6.h.
const ipv6Transparent = 75

// ErrNoTransparent means the process may not use IP_TRANSPARENT.
var ErrNoTransparent = errors.New("client_ip: transparent needs CAP_NET_ADMIN (run as root or grant the capability), and a policy route that sends the servers' replies back through this host")

// CheckTransparent reports whether this process can open transparent
// sockets, by trying on a throwaway socket.
func CheckTransparent() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_IP, syscall.IP_TRANSPARENT, 1); err != nil {
		return fmt.Errorf("%w: %v", ErrNoTransparent, err)
	}
	return nil
}
