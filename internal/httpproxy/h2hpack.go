package httpproxy

// A header block encoder for responses, in the manner of HAProxy's: static
// table indexes where a name (or :status with its value) is in the table,
// everything else a literal without indexing, strings raw (no Huffman).
// The dynamic table is never used, so encoding keeps no state, searches no
// table, and allocates nothing; the block's first field on each connection
// sets the dynamic table size to 0, so later SETTINGS_HEADER_TABLE_SIZE
// changes need no signal (RFC 7541 sections 4.2 and 6.3). x/net's encoder,
// with its table search and Huffman coding, was 6% of fulcrum's CPU in the
// HTTP/2 benchmark.

// hpackStatic maps the names of RFC 7541's static table to their first index.
var hpackStatic = func() map[string]uint8 {
	names := []string{":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme",
		":status", ":status", ":status", ":status", ":status", ":status", ":status",
		"accept-charset", "accept-encoding", "accept-language", "accept-ranges", "accept",
		"access-control-allow-origin", "age", "allow", "authorization", "cache-control",
		"content-disposition", "content-encoding", "content-language", "content-length",
		"content-location", "content-range", "content-type", "cookie", "date", "etag", "expect",
		"expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
		"if-unmodified-since", "last-modified", "link", "location", "max-forwards",
		"proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
		"server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent",
		"vary", "via", "www-authenticate"}
	m := make(map[string]uint8, len(names))
	for i, n := range names {
		if _, ok := m[n]; !ok {
			m[n] = uint8(i + 1)
		}
	}
	return m
}()

// hpackBlock builds one header block.
type hpackBlock struct {
	b     []byte
	lower []byte // scratch for a lower-cased name
}

// begin starts a block; sized reports whether this connection has already
// set its dynamic table size to 0.
func (h *hpackBlock) begin(sized *bool) {
	h.b = h.b[:0]
	if !*sized {
		h.b = append(h.b, 0x20) // dynamic table size update: 0
		*sized = true
	}
}

// status adds :status.
func (h *hpackBlock) status(code int) {
	var idx byte
	switch code {
	case 200:
		idx = 8
	case 204:
		idx = 9
	case 206:
		idx = 10
	case 304:
		idx = 11
	case 400:
		idx = 12
	case 404:
		idx = 13
	case 500:
		idx = 14
	}
	if idx != 0 {
		h.b = append(h.b, 0x80|idx) // indexed field
		return
	}
	h.b = appendHpackInt(h.b, 0, 4, 8) // literal, name :status
	h.b = append(h.b, 3, byte('0'+code/100%10), byte('0'+code/10%10), byte('0'+code%10))
}

// field adds name (lower-cased here) and value.
func (h *hpackBlock) field(name, value []byte) {
	h.lower = h.lower[:0]
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.lower = append(h.lower, c)
	}
	if idx, ok := hpackStatic[string(h.lower)]; ok {
		h.b = appendHpackInt(h.b, 0, 4, int(idx)) // literal without indexing, indexed name
	} else {
		h.b = append(h.b, 0) // literal without indexing, new name
		h.b = appendHpackString(h.b, h.lower)
	}
	h.b = appendHpackString(h.b, value)
}

// appendHpackInt appends v as an HPACK integer with an n-bit prefix, the
// rest of the first byte being first (RFC 7541 section 5.1).
func appendHpackInt(b []byte, first byte, n uint8, v int) []byte {
	max := 1<<n - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	for v -= max; v >= 0x80; v >>= 7 {
		b = append(b, byte(v&0x7f)|0x80)
	}
	return append(b, byte(v))
}

// appendHpackString appends s as a raw string literal (section 5.2).
func appendHpackString(b, s []byte) []byte {
	b = appendHpackInt(b, 0, 7, len(s))
	return append(b, s...)
}
