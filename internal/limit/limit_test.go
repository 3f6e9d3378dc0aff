package limit

import (
	"net/netip"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	tbl := New(100, c.now)
	a := netip.MustParseAddr("192.0.2.1")
	r := Rate{Requests: 10, Per: time.Second, Burst: 5}
	// A fresh client may send the burst plus one at once.
	for i := 0; i < 6; i++ {
		if ok, _ := tbl.Allow(a, 0, r); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := tbl.Allow(a, 0, r)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over the burst: ok %v wait %v, want refused for at most one interval", ok, wait)
	}
	// The same client under another scope has its own allowance.
	if ok, _ := tbl.Allow(a, 7, r); !ok {
		t.Fatal("another scope shares the state")
	}
	// Another client is not affected.
	if ok, _ := tbl.Allow(netip.MustParseAddr("192.0.2.2"), 0, r); !ok {
		t.Fatal("another client refused")
	}
	// After the wait, one more fits; at the steady rate, every one fits.
	c.t = c.t.Add(wait)
	for i := 0; i < 20; i++ {
		if ok, w := tbl.Allow(a, 0, r); !ok {
			t.Fatalf("steady request %d refused (wait %v)", i, w)
		}
		c.t = c.t.Add(100 * time.Millisecond)
	}
	// Unlimited.
	if ok, _ := tbl.Allow(a, 0, Rate{}); !ok {
		t.Fatal("zero rate limited")
	}
}

func TestConnections(t *testing.T) {
	tbl := New(100, nil)
	a := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 3; i++ {
		if !tbl.Open(a, 3) {
			t.Fatalf("connection %d refused", i)
		}
	}
	if tbl.Open(a, 3) {
		t.Fatal("fourth connection allowed with limit 3")
	}
	tbl.Close(a)
	if !tbl.Open(a, 3) {
		t.Fatal("connection refused after one closed")
	}
}

func TestBounded(t *testing.T) {
	tbl := New(64, nil)
	r := Rate{Requests: 1, Per: time.Hour, Burst: 1}
	for i := 0; i < 10000; i++ {
		tbl.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 0, r)
	}
	if n := tbl.Len(); n > 64+shards {
		t.Fatalf("%d entries held, bound 64", n)
	}
	// Clients with open connections are never evicted.
	held := netip.MustParseAddr("10.255.255.255")
	tbl.Open(held, 1)
	for i := 0; i < 10000; i++ {
		tbl.Allow(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), 0, r)
	}
	if tbl.Open(held, 1) {
		t.Fatal("a client's open connection was forgotten by eviction")
	}
}
