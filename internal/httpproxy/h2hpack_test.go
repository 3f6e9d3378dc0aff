package httpproxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestHpackBlockDecodes: blocks built by hpackBlock decode with x/net's
// decoder to the same fields, lower-cased: statuses in and out of the
// static table, names in and out of it, values and names long enough for
// multi-byte integers, several blocks on one connection (the table size
// update only in the first), and a decoder whose table limit is 0.
func TestHpackBlockDecodes(t *testing.T) {
	type field struct{ name, value string }
	blocks := []struct {
		status int
		fields []field
	}{
		{200, []field{{"Content-Type", "text/plain"}, {"Content-Length", "100"}, {"X-Backend", "a"}}},
		{404, []field{{"set-cookie", "SRV=" + strings.Repeat("x", 300)}, {"ETag", `"abc"`}}},
		{302, []field{{"Location", "/next"}, {strings.Repeat("X-Long-Name-", 20), "v"}}},
		{103, []field{{"Link", "</a.css>; rel=preload"}}},
		{599, nil},
		{204, []field{{"Date", "Sun, 22 Nov 2026 09:00:00 GMT"}, {"vary", ""}}},
	}
	for _, limit := range []uint32{4096, 0} {
		dec := hpack.NewDecoder(4096, nil)
		dec.SetAllowedMaxDynamicTableSize(limit)
		var h hpackBlock
		sized := false
		for i, b := range blocks {
			h.begin(&sized)
			h.status(b.status)
			for _, f := range b.fields {
				h.field([]byte(f.name), []byte(f.value))
			}
			if got := bytes.HasPrefix(h.b, []byte{0x20}); got != (i == 0) {
				t.Fatalf("block %d starts with a table size update: %v", i, got)
			}
			got, err := dec.DecodeFull(h.b)
			if err != nil {
				t.Fatalf("limit %d, block %d: %v", limit, i, err)
			}
			want := []hpack.HeaderField{{Name: ":status", Value: fmt.Sprint(b.status)}}
			for _, f := range b.fields {
				want = append(want, hpack.HeaderField{Name: strings.ToLower(f.name), Value: f.value})
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("limit %d, block %d decoded to\n%v\nwant\n%v", limit, i, got, want)
			}
		}
	}
}

// TestHpackBlockAllocatesNothing: building a response's block allocates
// nothing once the buffers have grown.
func TestHpackBlockAllocatesNothing(t *testing.T) {
	var h hpackBlock
	sized := true
	name, value := []byte("Content-Type"), []byte("text/plain")
	other := []byte("X-Backend")
	if n := testing.AllocsPerRun(100, func() {
		h.begin(&sized)
		h.status(200)
		h.field(name, value)
		h.field(other, value)
	}); n != 0 {
		t.Fatalf("%v allocations per block", n)
	}
}
