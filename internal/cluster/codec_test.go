package cluster

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/persist"
)

// limitRecords are one record of each limit kind.
var limitRecords = []change{
	{pool: "web", lim: limit.Change{Kind: limit.KindReset}},
	{pool: "web", lim: limit.Change{Kind: limit.KindRate, Addr: netip.MustParseAddr("192.0.2.1"), Scope: limit.ListenerScope, N: 3}},
	{pool: "web", lim: limit.Change{Kind: limit.KindAhead, Addr: netip.MustParseAddr("2001:db8::1"), Scope: "route path_prefix=/api", Ahead: 1500 * time.Millisecond}},
	{pool: "web", lim: limit.Change{Kind: limit.KindConns, Addr: netip.MustParseAddr("::ffff:192.0.2.9"), N: 0}},
	{pool: "api", lim: limit.Change{Kind: limit.KindConns, Addr: netip.MustParseAddr("192.0.2.9"), N: 4}},
}

func TestCodecRoundTrip(t *testing.T) {
	in := []change{
		{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "abc", Server: "s1", Seen: time.Unix(1700000000, 0)}},
		{pool: "app", Change: persist.Change{Op: persist.OpDelete, Key: "gone"}},
		{pool: "other", Change: persist.Change{Op: persist.OpSet, Key: string(make([]byte, persist.MaxKeyLen)), Server: "x", Seen: time.Unix(5, 0)}},
	}
	in = append(in, limitRecords...)
	var b batchWriter
	b.reset()
	for i := range in {
		b.add(&in[i])
	}
	// Changes the encoding cannot carry are left out, never half-written.
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "k"}})
	b.add(&change{pool: "", Change: persist.Change{Op: persist.OpDelete, Key: "k"}})
	b.add(&change{pool: "web", lim: limit.Change{Kind: limit.KindRate, Addr: netip.MustParseAddr("192.0.2.1"), Scope: "listener"}})
	b.add(&change{pool: "web", lim: limit.Change{Kind: limit.KindRate, Addr: netip.MustParseAddr("192.0.2.1"), N: 1}})
	b.add(&change{pool: "web", lim: limit.Change{Kind: limit.KindConns, N: 1}})
	b.add(&change{pool: "web", lim: limit.Change{Kind: 99}})
	var out []change
	if err := decodeBatch(b.bytes(), proto2, func(c change) { out = append(out, c) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("got %+v, want %+v", out, in)
	}
}

// TestCodecLimitsNeedProtocol2: a protocol 1 session (an older peer, or
// Redis) refuses a batch holding a limit record, whole.
func TestCodecLimitsNeedProtocol2(t *testing.T) {
	for _, rec := range limitRecords {
		var b batchWriter
		b.reset()
		b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpDelete, Key: "k"}})
		b.add(&rec)
		applied := 0
		err := decodeBatch(b.bytes(), proto1, func(change) { applied++ })
		if !errors.Is(err, ErrMalformed) || applied != 0 {
			t.Errorf("kind %d in protocol 1: got err %v and %d applied, want ErrMalformed and none", rec.lim.Kind, err, applied)
		}
		if err := decodeBatch(b.bytes(), proto2, func(change) { applied++ }); err != nil || applied != 2 {
			t.Errorf("kind %d in protocol 2: got err %v and %d applied, want 2", rec.lim.Kind, err, applied)
		}
	}
}

func TestCodecMalformed(t *testing.T) {
	var b batchWriter
	b.reset()
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "abc", Server: "s1", Seen: time.Unix(1, 0)}})
	good := b.bytes()
	var lb batchWriter
	lb.reset()
	lb.add(&limitRecords[1])
	rate := lb.bytes() // count | 3 web | 3 | 4 addr | 8 listener | n
	for name, p := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"count":     append([]byte{0, 0, 0, 2}, good[4:]...),
		"op":        func() []byte { q := append([]byte{}, good...); q[4+1+3] = 9; return q }(),
		"addr len":  func() []byte { q := append([]byte{}, rate...); q[4+1+3+1] = 5; return q }(),
		"no scope":  func() []byte { q := append([]byte{}, rate...); q[4+1+3+1+1+4] = 0; return q }(),
		"zero rate": func() []byte { q := append([]byte{}, rate...); copy(q[len(q)-4:], []byte{0, 0, 0, 0}); return q }(),
		"rate cut":  rate[:len(rate)-2],
	} {
		applied := 0
		err := decodeBatch(p, proto2, func(change) { applied++ })
		if !errors.Is(err, ErrMalformed) || applied != 0 {
			t.Errorf("%s: got err %v and %d applied, want ErrMalformed and none", name, err, applied)
		}
	}
}

// FuzzDecodeBatch: under either protocol, any input either decodes into
// changes that encode back to the same bytes, or fails with ErrMalformed
// having applied nothing; protocol 1 never yields a limit record.
func FuzzDecodeBatch(f *testing.F) {
	var b batchWriter
	b.reset()
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "abc", Server: "s1", Seen: time.Unix(1, 0)}})
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpDelete, Key: "abc"}})
	f.Add(b.bytes())
	f.Add([]byte{0, 0, 0, 0})
	b.reset()
	for i := range limitRecords {
		b.add(&limitRecords[i])
	}
	f.Add(b.bytes())
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, proto := range []int{proto1, proto2} {
			var out []change
			err := decodeBatch(p, proto, func(c change) { out = append(out, c) })
			if err != nil {
				if !errors.Is(err, ErrMalformed) || len(out) != 0 {
					t.Fatalf("protocol %d: got %v with %d changes applied", proto, err, len(out))
				}
				continue
			}
			var w batchWriter
			w.reset()
			for i := range out {
				if proto == proto1 && out[i].lim.Kind != 0 {
					t.Fatalf("protocol 1 decoded a limit record %+v", out[i])
				}
				w.add(&out[i])
			}
			if string(w.bytes()) != string(p) {
				t.Fatalf("protocol %d: re-encoding differs:\n got %x\nwant %x", proto, w.bytes(), p)
			}
		}
	})
}
