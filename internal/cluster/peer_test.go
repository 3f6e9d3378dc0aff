package cluster

import (
	"strings"
	"testing"
	"time"
)

// TestPairReplicates: a change on either node reaches the other within a
// second, both ways, deletes too; nothing echoes back.
func TestPairReplicates(t *testing.T) {
	ring := newRing(t)
	a, b := pair(t, ring, ring)
	waitFor(t, 5*time.Second, "both links up", func() bool {
		s, u := a.c.Status(), b.c.Status()
		return s.Peers[0].Connected && s.Peers[0].Inbound && u.Peers[0].Connected && u.Peers[0].Inbound
	})
	start := time.Now()
	a.table.PinString("k1", "s1")
	b.table.PinString("k2", "s2")
	waitFor(t, time.Second, "k1 on lb2 and k2 on lb1", func() bool {
		e1, ok1 := b.table.Peek("k1")
		e2, ok2 := a.table.Peek("k2")
		return ok1 && e1.Server == "s1" && ok2 && e2.Server == "s2"
	})
	t.Logf("replicated both ways in %s", time.Since(start))
	a.table.Delete("k2")
	waitFor(t, time.Second, "k2 deleted on lb2", func() bool { _, ok := b.table.Peek("k2"); return !ok })
	// Moving a key on one side wins on the other (last writer wins).
	b.table.PinString("k1", "s3")
	waitFor(t, time.Second, "k1 moved on lb1", func() bool { e, _ := a.table.Peek("k1"); return e.Server == "s3" })
	st := a.c.Status()
	if p := st.Peers[0]; p.Sent < 2 || p.Received < 2 || p.Resyncs < 1 || p.LastSync == nil {
		t.Errorf("status: got %+v, want sent and received >= 2, a resync and a last sync", p)
	}
}

// TestSnapshotOnConnect: a node that comes up later gets the whole table of
// a peer that was running alone, then deltas.
func TestSnapshotOnConnect(t *testing.T) {
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring})
	for i := range 5000 {
		a.table.PinString(key(i), "s"+string(rune('a'+i%3)))
	}
	b := startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring})
	waitFor(t, 5*time.Second, "lb2 to hold lb1's table", func() bool { return b.table.Len() == 5000 })
	a.table.PinString("late", "sa")
	waitFor(t, time.Second, "a delta after the snapshot", func() bool { _, ok := b.table.Peek("late"); return ok })
	if e, _ := b.table.Peek(key(4)); e.Server != "sb" {
		t.Errorf("key 4: got server %q, want sb", e.Server)
	}
}

// TestOtherRingRefused: a node with another key ring is refused by both
// sides, logged, and nothing it sends is applied.
func TestOtherRingRefused(t *testing.T) {
	a, b := pair(t, newRing(t), newRing(t))
	a.table.PinString("k1", "s1")
	b.table.PinString("k2", "s2")
	waitFor(t, 5*time.Second, "both sides to refuse", func() bool {
		return a.c.Status().Refused > 0 && b.c.Status().Refused > 0
	})
	for _, n := range []*node{a, b} {
		if got := n.table.Len(); got != 1 {
			t.Errorf("table has %d entries, want 1 (nothing from the other ring)", got)
		}
		if st := n.c.Status().Peers[0]; st.Connected || st.Inbound || st.Errors == 0 || !strings.Contains(st.LastError, "key ring") {
			t.Errorf("status: got %+v, want not connected, errors naming the key ring", st)
		}
		if logs := n.logs.String(); !strings.Contains(logs, "does not hold this key ring") {
			t.Errorf("log does not name the refusal:\n%s", logs)
		}
	}
}

// TestUnknownNodeRefused: a node holding the ring but not listed as a peer
// is refused.
func TestUnknownNodeRefused(t *testing.T) {
	ring := newRing(t)
	addrA := freeAddr(t)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: freeAddr(t)}}, ring: ring})
	x := startNode(t, nodeOptions{name: "lb9", listen: freeAddr(t), peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring})
	x.table.PinString("k", "s")
	waitFor(t, 5*time.Second, "lb1 to refuse lb9", func() bool { return a.c.Status().Refused > 0 })
	if a.table.Len() != 0 {
		t.Fatal("lb1 applied a change from a node that is not its peer")
	}
	waitFor(t, 5*time.Second, "lb9 to log why", func() bool { return strings.Contains(x.logs.String(), "not one of my peers") })
}

// TestOverflowResyncs: a peer that cannot keep up (here: down) makes the
// queue overflow; the hook never blocks, and the next connection resyncs
// the whole table.
func TestOverflowResyncs(t *testing.T) {
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring, queue: 100})
	start := time.Now()
	for i := range 1000 {
		a.table.PinString(key(i), "s1")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 pins with a full queue took %s: the hook blocks", d)
	}
	st := a.c.Status().Peers[0]
	if st.Overflows == 0 || st.Queued > 100 {
		t.Fatalf("status: got %+v, want an overflow and at most 100 queued", st)
	}
	b := startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring})
	waitFor(t, 5*time.Second, "lb2 to get all 1000 keys", func() bool { return b.table.Len() == 1000 })
	waitFor(t, 2*time.Second, "the queue to drain", func() bool { s := a.c.Status().Peers[0]; return s.Queued == 0 && s.LagSeconds == 0 })
}

// TestReconnectAfterPeerRestart: a peer that restarts (empty table) gets the
// full table again.
func TestReconnectAfterPeerRestart(t *testing.T) {
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring})
	peersB := []Peer{{Name: "lb1", Address: addrA}}
	b := startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: peersB, ring: ring})
	for i := range 100 {
		a.table.PinString(key(i), "s1")
	}
	waitFor(t, 2*time.Second, "lb2 to have 100", func() bool { return b.table.Len() == 100 })
	b.c.Stop()
	a.table.PinString("while-down", "s2")
	b2 := startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: peersB, ring: ring})
	waitFor(t, 5*time.Second, "restarted lb2 to resync", func() bool { return b2.table.Len() == 101 })
	if r := a.c.Status().Peers[0].Resyncs; r < 2 {
		t.Errorf("resyncs: got %d, want at least 2", r)
	}
}
