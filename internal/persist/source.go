package persist

import "net/netip"

// SourceMask groups clients by address prefix for mode source_ip.
type SourceMask struct {
	// V4 is the prefix length for IPv4 clients, 0..32 (config source_mask,
	// default 32). IPv4-mapped IPv6 addresses count as IPv4.
	V4 int
	// V6 is the prefix length for IPv6 clients, 0..128 (config
	// source_mask_v6, default 128).
	V6 int
}

// DefaultSourceMask keeps every address apart.
var DefaultSourceMask = SourceMask{V4: 32, V6: 128}

// Mask returns addr with the host bits cleared and no zone. Out-of-range
// lengths are clamped.
func (m SourceMask) Mask(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	bits := min(max(m.V6, 0), 128)
	if addr.Is4() {
		bits = min(max(m.V4, 0), 32)
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Addr{} // the zero Addr: addr was invalid
	}
	return p.Addr()
}

// AppendKey appends the table key of a client address to dst: the masked
// address as text ("10.1.2.0", "2001:db8::"), so the admin API can show
// and look up keys. An invalid addr appends nothing. With a large enough
// dst (a [64]byte array on the stack) nothing is allocated.
func (m SourceMask) AppendKey(dst []byte, addr netip.Addr) []byte {
	a := m.Mask(addr)
	if !a.IsValid() {
		return dst
	}
	return a.AppendTo(dst)
}
