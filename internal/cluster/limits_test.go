package cluster

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
)

var (
	// frozen is the limit tables' clock: nothing leaks back during a test,
	// so every count is exact whatever the machine's speed.
	frozen = func() time.Time { return time.Unix(1_700_000_000, 0) }
	// five admits five requests at once, then one every 12 minutes.
	five   = limit.Rate{Requests: 5, Per: time.Hour, Burst: 4}
	client = netip.MustParseAddr("203.0.113.50")
)

// limitPair starts lb1 and lb2 with the web listener limited to rate, and
// waits until both push to each other with protocol 2.
func limitPair(t *testing.T, rate limit.Rate) (a, b *node) {
	t.Helper()
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a = startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring, rate: rate, now: frozen})
	b = startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring, rate: rate, now: frozen})
	waitLinked(t, a, b)
	return a, b
}

func waitLinked(t *testing.T, nodes ...*node) {
	t.Helper()
	waitFor(t, 5*time.Second, "both links up with protocol 2", func() bool {
		for _, n := range nodes {
			p := n.c.Status().Peers[0]
			if !p.Connected || !p.Inbound || p.Protocol != 2 {
				return false
			}
		}
		return true
	})
}

// ahead is how far n holds client's listener state ahead of now.
func ahead(n *node, a netip.Addr) time.Duration {
	for _, s := range n.limits.Inspect(a).Scopes {
		if s.Scope == limit.ListenerScope {
			return s.Ahead
		}
	}
	return 0
}

func interval(r limit.Rate) time.Duration { return r.Per / time.Duration(r.Requests) }

// TestLimitRateAcrossPair: a client alternating between lb1 and lb2 gets
// the rate and burst once in total, not once per node; then both refuse
// it with the same wait.
func TestLimitRateAcrossPair(t *testing.T) {
	a, b := limitPair(t, five)
	iv := interval(five)
	admitted := 0
	for i := range 12 {
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		if ok, _ := from.limits.Allow(client, 0, five); !ok {
			continue
		}
		admitted++
		want := time.Duration(admitted) * iv
		waitFor(t, 2*time.Second, "the other node to hear of the request", func() bool { return ahead(to, client) >= want })
	}
	if admitted != 5 {
		t.Fatalf("admitted %d requests through the pair, want 5 (rate plus burst, once)", admitted)
	}
	for name, n := range map[string]*node{"lb1": a, "lb2": b} {
		if ok, wait := n.limits.Allow(client, 0, five); ok || wait != iv {
			t.Errorf("%s: ok %v wait %v, want refused for one interval (%v)", name, ok, wait, iv)
		}
	}
	if st := a.c.Status(); len(st.Limits) != 1 || st.Limits[0] != "web" || st.IgnoredLimits != 0 {
		t.Errorf("status: limits %v ignored %d, want [web] and none ignored", st.Limits, st.IgnoredLimits)
	}
}

// TestLimitBothActive: both nodes admit one client's requests at the same
// time; once the records have crossed, both hold the sum of what both
// admitted (max-merging states would hold one node's part) and refuse
// what the sum used up.
func TestLimitBothActive(t *testing.T) {
	rate := limit.Rate{Requests: 100, Per: time.Hour, Burst: 99}
	a, b := limitPair(t, rate)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				if ok, _ := n.limits.Allow(client, 0, rate); ok {
					counts[i]++
				}
			}
		}()
	}
	wg.Wait()
	total := counts[0] + counts[1]
	t.Logf("admitted %d on lb1 and %d on lb2", counts[0], counts[1])
	if total < 100 || total > 120 {
		t.Fatalf("admitted %d in total, want 100 to 120 (the allowance, plus what crossed late)", total)
	}
	want := min(time.Duration(total)*interval(rate), rate.Per+99*interval(rate))
	waitFor(t, 2*time.Second, "both nodes to hold the sum", func() bool { return ahead(a, client) == want && ahead(b, client) == want })
	for name, n := range map[string]*node{"lb1": a, "lb2": b} {
		if ok, _ := n.limits.Allow(client, 0, rate); ok {
			t.Errorf("%s admitted a request after %d were admitted in total", name, total)
		}
	}
}

// TestLimitConnectionsAcrossPair: 2 connections on lb1 and 2 on lb2 use a
// limit of 4 on both; closing one frees a place on the other node; when
// the link to a peer drops, its counts stop holding anyone off.
func TestLimitConnectionsAcrossPair(t *testing.T) {
	a, b := limitPair(t, limit.Rate{})
	for _, n := range []*node{a, a, b, b} {
		if !n.limits.Open(client, 4) {
			t.Fatal("refused a connection under the limit")
		}
	}
	waitFor(t, 2*time.Second, "each node to hear of the other's 2", func() bool {
		return a.limits.Inspect(client).Peers["lb2"] == 2 && b.limits.Inspect(client).Peers["lb1"] == 2
	})
	if a.limits.Open(client, 4) || b.limits.Open(client, 4) {
		t.Fatal("a fifth connection was allowed with 2 open on each node and a limit of 4")
	}
	a.limits.Close(client)
	waitFor(t, 2*time.Second, "lb2 to hear lb1 closed one", func() bool { return b.limits.Inspect(client).Peers["lb1"] == 1 })
	if !b.limits.Open(client, 4) {
		t.Fatal("lb2 refused a fourth connection after lb1 closed one")
	}
	waitFor(t, 2*time.Second, "lb1 to hear lb2 opened a third", func() bool { return a.limits.Inspect(client).Peers["lb2"] == 3 })
	if a.limits.Open(client, 4) {
		t.Fatal("lb1 allowed a fifth connection (1 here, 3 at lb2)")
	}
	b.c.Stop()
	waitFor(t, 8*time.Second, "lb1 to drop lb2's counts when its link ends", func() bool { return len(a.limits.Inspect(client).Peers) == 0 })
	if !a.limits.Open(client, 4) {
		t.Fatal("lb1 still counts the connections of a peer whose link ended")
	}
}

// TestLimitSnapshotOnConnect: a node that starts later learns its peer's
// rate states and open connections from the full sync, then deltas.
func TestLimitSnapshotOnConnect(t *testing.T) {
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ring, rate: five, now: frozen})
	for range 3 {
		a.limits.Allow(client, 0, five)
	}
	a.limits.Open(client, 10)
	a.limits.Open(client, 10)
	b := startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring, rate: five, now: frozen})
	iv := interval(five)
	waitFor(t, 5*time.Second, "lb2 to learn lb1's state", func() bool {
		return ahead(b, client) == 3*iv && b.limits.Inspect(client).Peers["lb1"] == 2
	})
	a.limits.Allow(client, 0, five)
	waitFor(t, 2*time.Second, "a delta after the snapshot", func() bool { return ahead(b, client) == 4*iv })
	if ok, _ := b.limits.Allow(client, 0, five); !ok {
		t.Fatal("lb2 refused the fifth request")
	}
	if ok, _ := b.limits.Allow(client, 0, five); ok {
		t.Fatal("lb2 admitted a sixth request")
	}
}

// TestOlderPeerFallback: an acceptor that closes on a protocol 2 hello (as
// a fulcrum without limit replication does) gets a protocol 1 session:
// persistence replicates to it, limits do not; the other direction, both
// new, speaks 2.
func TestOlderPeerFallback(t *testing.T) {
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	old := newOldAcceptor(t, addrB, true)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: old.addr()}}, ring: ring, rate: five, now: frozen})
	b := startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring, rate: five, now: frozen})
	waitFor(t, 5*time.Second, "lb1 to connect with protocol 1", func() bool { return a.c.Status().Peers[0].Protocol == 1 })
	waitFor(t, 5*time.Second, "lb2 to connect with protocol 2", func() bool { return b.c.Status().Peers[0].Protocol == 2 })
	if old.closed() == 0 {
		t.Error("the old acceptor never saw a protocol 2 hello")
	}
	a.table.PinString("k", "s1")
	waitFor(t, 2*time.Second, "persistence to replicate over protocol 1", func() bool { _, ok := b.table.Peek("k"); return ok })
	b.limits.Allow(client, 0, five)
	waitFor(t, 2*time.Second, "lb2's limits to reach lb1 over protocol 2", func() bool { return ahead(a, client) == interval(five) })
	a.limits.Allow(client, 0, five)
	a.table.PinString("k2", "s1") // after the limit record on the same link
	waitFor(t, 2*time.Second, "k2 on lb2", func() bool { _, ok := b.table.Peek("k2"); return ok })
	if got := ahead(b, client); got != interval(five) {
		t.Errorf("lb2 ahead %v, want its own one interval: protocol 1 carries no limits", got)
	}
	if !strings.Contains(a.logs.String(), "protocol 1") {
		t.Errorf("lb1 did not log the older protocol:\n%s", a.logs.String())
	}
}

// TestFallbackRecovers: a new acceptor that closes a connection at the
// hello for another reason (here the first one; in the field, no handshake
// slot free) leads the dialer to offer protocol 1 once; the acceptor says
// it speaks 2, and the pair ends up on 2.
func TestFallbackRecovers(t *testing.T) {
	ring := newRing(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	flaky := newOldAcceptor(t, addrB, false)
	a := startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: flaky.addr()}}, ring: ring, rate: five, now: frozen})
	startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ring, rate: five, now: frozen})
	waitFor(t, 5*time.Second, "lb1 to connect with protocol 2", func() bool { return a.c.Status().Peers[0].Protocol == 2 })
	if flaky.closed() != 1 {
		t.Errorf("the acceptor closed %d connections, want 1", flaky.closed())
	}
	if !strings.Contains(a.logs.String(), "speaks protocol 2 after all") {
		t.Errorf("lb1 did not offer protocol 1 in between:\n%s", a.logs.String())
	}
}

// oldAcceptor stands in front of a node's replication endpoint. With old
// set it acts like a fulcrum that only knows protocol 1: it closes any
// connection whose hello is not "FLC1", and hides that the node behind it
// speaks 2 (its hello's fingerprint, which no MAC covers). Without, it
// closes the first connection only. Others are passed through.
type oldAcceptor struct {
	ln      net.Listener
	target  string
	old     bool
	mu      sync.Mutex
	refused int
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newOldAcceptor(t *testing.T, target string, old bool) *oldAcceptor {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &oldAcceptor{ln: ln, target: target, old: old}
	o.wg.Add(1)
	go o.serve()
	t.Cleanup(func() {
		ln.Close()
		o.mu.Lock()
		for _, c := range o.conns {
			c.Close()
		}
		o.mu.Unlock()
		o.wg.Wait()
	})
	return o
}

func (o *oldAcceptor) addr() string { return o.ln.Addr().String() }

func (o *oldAcceptor) closed() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refused
}

func (o *oldAcceptor) serve() {
	defer o.wg.Done()
	for {
		c, err := o.ln.Accept()
		if err != nil {
			return
		}
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.handle(c)
		}()
	}
}

func (o *oldAcceptor) handle(c net.Conn) {
	magic := make([]byte, 4)
	_, err := io.ReadFull(c, magic)
	o.mu.Lock()
	refuse := err != nil || o.old && !bytes.Equal(magic, []byte("FLC1")) || !o.old && o.refused == 0
	if refuse {
		o.refused++
	}
	o.mu.Unlock()
	if refuse {
		c.Close()
		return
	}
	u, err := net.Dial("tcp", o.target)
	if err != nil {
		c.Close()
		return
	}
	o.mu.Lock()
	o.conns = append(o.conns, c, u)
	o.mu.Unlock()
	u.Write(magic)
	done := make(chan struct{})
	go func() { copyClose(u, c); close(done) }()
	if o.old {
		// The acceptor's hello: magic, nonce, name, fingerprint.
		r := bufio.NewReader(u)
		head := make([]byte, 4+32)
		io.ReadFull(r, head)
		name, _ := readString8(r)
		fp, _ := readString8(r)
		c.Write(appendString8(appendString8(head, name), strings.TrimSuffix(fp, newerMark)))
		copyClose(c, bufferedConn{u, r})
	} else {
		copyClose(c, u)
	}
	<-done
}

// bufferedConn reads through r what was left in it.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
