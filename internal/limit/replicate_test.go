package limit

import (
	"net/netip"
	"testing"
	"time"
)

// hour10 admits 10 requests at once, then one every 6 minutes: nothing
// leaks back within a test, so counts are exact.
var hour10 = Rate{Requests: 10, Per: time.Hour, Burst: 9}

const apiScope = "route path_prefix=/api"

func scopes(r Rate) []Scope {
	return []Scope{{Name: ListenerScope, Rate: r}, {Name: apiScope, Rate: r}}
}

// newNode is a table as one cluster member holds it: named scopes in
// force, a frozen clock, a hook counting its calls.
func newNode(t *testing.T, c *clock, r Rate) (*Table, *int) {
	t.Helper()
	tbl := New(1000, c.now)
	tbl.SetScopes(scopes(r))
	calls := new(int)
	tbl.SetOnPending(func() { *calls++ })
	return tbl, calls
}

// rates are hour10 bound to the listener's scope (index 0) and the api
// route's (index 1), as the app builds a listener's config.
func rates(tbl *Table) []Rate {
	return []Rate{tbl.Bind(Scope{Name: ListenerScope, Rate: hour10}), tbl.Bind(Scope{Name: apiScope, Rate: hour10})}
}

func ahead(tbl *Table, a netip.Addr, scope string) time.Duration {
	for _, s := range tbl.Inspect(a).Scopes {
		if s.Scope == scope {
			return s.Ahead
		}
	}
	return 0
}

// admit sends n requests of a through tbl under scope index 0 (the
// listener's) or 1 (the api route's) and returns how many passed.
func admit(tbl *Table, a netip.Addr, scope, n int) int {
	r := rates(tbl)[scope]
	ok := 0
	for range n {
		if pass, _ := tbl.Allow(a, scope, r); pass {
			ok++
		}
	}
	return ok
}

// exchange applies every pending change of from to to, as the cluster
// does after a coalescing window.
func exchange(t *testing.T, from, to *Table, src Source) {
	t.Helper()
	for _, c := range from.Drain(nil) {
		to.Apply(src, c)
	}
}

var client = netip.MustParseAddr("198.51.100.7")

// TestDrainCoalesces: many requests of one client under one scope drain
// as one change; the hook is called once per Drain; connection changes
// drain as the absolute count.
func TestDrainCoalesces(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	tbl, calls := newNode(t, c, hour10)
	if got := admit(tbl, client, 0, 5) + admit(tbl, client, 1, 2); got != 7 {
		t.Fatalf("admitted %d, want 7", got)
	}
	tbl.Open(client, 10)
	tbl.Open(client, 10)
	tbl.Close(client)
	if *calls != 1 {
		t.Errorf("hook called %d times, want once until the next Drain", *calls)
	}
	got := map[Change]bool{}
	for _, ch := range tbl.Drain(nil) {
		got[ch] = true
	}
	want := map[Change]bool{
		{Kind: KindRate, Addr: client, Scope: ListenerScope, N: 5}: true,
		{Kind: KindRate, Addr: client, Scope: apiScope, N: 2}:      true,
		{Kind: KindConns, Addr: client, N: 1}:                      true,
	}
	if len(got) != len(want) {
		t.Fatalf("drained %v, want %v", got, want)
	}
	for ch := range want {
		if !got[ch] {
			t.Errorf("missing %+v in %v", ch, got)
		}
	}
	if d := tbl.Drain(nil); len(d) != 0 {
		t.Errorf("second drain: got %v, want nothing", d)
	}
	admit(tbl, client, 0, 1)
	if *calls != 2 {
		t.Errorf("hook called %d times after a new admission, want 2", *calls)
	}
	// Refused requests consume nothing and replicate nothing.
	tbl.Drain(nil)
	admit(tbl, client, 0, 20)
	if d := tbl.Drain(nil); len(d) != 1 || d[0].N != 4 {
		t.Errorf("after 20 more requests with 4 left: drained %+v, want one change of 4", d)
	}
}

// TestNoHookNoTracking: without a hook nothing is pending.
func TestNoHookNoTracking(t *testing.T) {
	tbl := New(100, nil)
	tbl.SetScopes(scopes(hour10))
	admit(tbl, client, 0, 3)
	tbl.Open(client, 3)
	if d := tbl.Drain(nil); len(d) != 0 {
		t.Fatalf("drained %v without a hook", d)
	}
}

// TestBothActiveSum: two nodes admit requests of one client at the same
// time, before either hears of the other; after the exchange both hold
// the sum (max-merging states would hold the larger part only) and admit
// only what is left of the allowance.
func TestBothActiveSum(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	a, _ := newNode(t, c, hour10)
	b, _ := newNode(t, c, hour10)
	if n := admit(a, client, 0, 3) + admit(b, client, 0, 4); n != 7 {
		t.Fatalf("admitted %d, want 7", n)
	}
	exchange(t, a, b, Source{Node: "lb1", Session: 1})
	exchange(t, b, a, Source{Node: "lb2", Session: 1})
	iv := hour10.Per / time.Duration(hour10.Requests)
	for name, tbl := range map[string]*Table{"lb1": a, "lb2": b} {
		if got := ahead(tbl, client, ListenerScope); got != 7*iv {
			t.Errorf("%s: ahead %v, want 7 intervals (%v)", name, got, 7*iv)
		}
	}
	// Alternating, exchanging after each: 3 more in total, not 3 per node.
	total := 0
	for i := range 10 {
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		total += admit(from, client, 0, 1)
		exchange(t, from, to, Source{Node: "x", Session: 1})
	}
	if total != 3 {
		t.Errorf("alternating after 7: admitted %d, want 3", total)
	}
	ok, wait := b.Allow(client, 0, rates(b)[0])
	if ok || wait != iv {
		t.Errorf("after the allowance: ok %v wait %v, want refused for one interval %v", ok, wait, iv)
	}
}

// TestApplyAheadIdempotent: a snapshot applied twice counts once, and
// never lowers a state; requests not yet drained are left to the next
// Drain, so snapshot plus Drain count each once.
func TestApplyAheadIdempotent(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	a, _ := newNode(t, c, hour10)
	b, _ := newNode(t, c, hour10)
	other := netip.MustParseAddr("2001:db8::9")
	admit(a, client, 0, 3)
	admit(b, other, 0, 6)
	admit(a, other, 0, 2)
	a.Drain(nil)           // sent before the snapshot (here: lost)
	admit(a, client, 0, 1) // pending when the snapshot is taken
	for range 2 {
		a.Range(func(ch Change) bool { b.Apply(Source{Node: "lb1", Session: 1}, ch); return true })
	}
	iv := hour10.Per / time.Duration(hour10.Requests)
	if got := ahead(b, client, ListenerScope); got != 3*iv {
		t.Errorf("client: ahead %v after two snapshots, want the 3 drained intervals", got)
	}
	exchange(t, a, b, Source{Node: "lb1", Session: 1})
	if got := ahead(b, client, ListenerScope); got != 4*iv {
		t.Errorf("client: ahead %v after the snapshot and the next drain, want 4 intervals", got)
	}
	if got := ahead(b, other, ListenerScope); got != 6*iv {
		t.Errorf("other: ahead %v, want its own 6 intervals kept", got)
	}
	// Time passes: the state leaks as locally.
	c.t = c.t.Add(2 * iv)
	if got := ahead(b, client, ListenerScope); got != 2*iv {
		t.Errorf("client two intervals later: ahead %v, want 2 intervals", got)
	}
}

// TestApplyBounds: a peer can never hold a client off longer than one
// period beyond its burst; unknown scopes and unlimited ones apply nothing.
func TestApplyBounds(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	tbl, _ := newNode(t, c, hour10)
	src := Source{Node: "lb2", Session: 1}
	if !tbl.Apply(src, Change{Kind: KindRate, Addr: client, Scope: ListenerScope, N: 1 << 31}) {
		t.Fatal("rate change refused")
	}
	iv := hour10.Per / time.Duration(hour10.Requests)
	if got, want := ahead(tbl, client, ListenerScope), hour10.Per+9*iv; got != want {
		t.Errorf("ahead %v, want at most %v", got, want)
	}
	tbl.Apply(src, Change{Kind: KindAhead, Addr: client, Scope: ListenerScope, Ahead: 1000 * time.Hour})
	if got, want := ahead(tbl, client, ListenerScope), hour10.Per+9*iv; got != want {
		t.Errorf("after a huge snapshot: ahead %v, want at most %v", got, want)
	}
	if tbl.Apply(src, Change{Kind: KindRate, Addr: client, Scope: "route host=other", N: 1}) {
		t.Error("applied a change for a scope this table does not have")
	}
	tbl.SetScopes([]Scope{{Name: ListenerScope}})
	if tbl.Apply(src, Change{Kind: KindRate, Addr: client, Scope: ListenerScope, N: 1}) {
		t.Error("applied a rate change to an unlimited scope")
	}
}

// TestPeerConnections: connections other nodes report count against the
// limit until their session ends, a newer session or a snapshot replaces
// them; late reports of an old session are ignored.
func TestPeerConnections(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	tbl, _ := newNode(t, c, Rate{})
	s1 := Source{Node: "lb2", Session: 1}
	tbl.Apply(s1, Change{Kind: KindConns, Addr: client, N: 2})
	if !tbl.Open(client, 4) || !tbl.Open(client, 4) {
		t.Fatal("refused a connection under the limit (2 here + 2 at lb2 of 4)")
	}
	if tbl.Open(client, 4) {
		t.Fatal("a fifth connection allowed: lb2's 2 were not counted")
	}
	if got := tbl.Inspect(client); got.Connections != 2 || got.Peers["lb2"] != 2 {
		t.Errorf("inspect: got %+v, want 2 here and 2 at lb2", got)
	}
	tbl.Apply(s1, Change{Kind: KindConns, Addr: client, N: 1})
	if !tbl.Open(client, 4) {
		t.Fatal("refused after lb2 closed one")
	}
	tbl.Close(client)

	// The link ends: lb2's counts are void.
	tbl.Forget(s1)
	if got := tbl.Inspect(client).Peers; len(got) != 0 {
		t.Errorf("after Forget: peers %v, want none", got)
	}
	if tbl.Apply(s1, Change{Kind: KindConns, Addr: client, N: 3}) {
		t.Error("applied a count of an ended session")
	}
	// A new session; a late report from an older one changes nothing.
	s3 := Source{Node: "lb2", Session: 3}
	tbl.Apply(s3, Change{Kind: KindConns, Addr: client, N: 1})
	if tbl.Apply(Source{Node: "lb2", Session: 2}, Change{Kind: KindConns, Addr: client, N: 9}) {
		t.Error("applied a count of a superseded session")
	}
	if got := tbl.Inspect(client).Peers["lb2"]; got != 1 {
		t.Errorf("lb2: %d connections, want 1", got)
	}
	// Forgetting an older session does not void the newer one's counts.
	tbl.Forget(s1)
	if got := tbl.Inspect(client).Peers["lb2"]; got != 1 {
		t.Errorf("after forgetting an old session: lb2 %d, want 1", got)
	}
	// A snapshot begins: what lb2 reported before is void.
	tbl.Apply(s3, Change{Kind: KindReset})
	if got := tbl.Inspect(client).Peers; len(got) != 0 {
		t.Errorf("after a reset: peers %v, want none", got)
	}
	if !tbl.Open(client, 4) || !tbl.Open(client, 4) {
		t.Error("refused connections after lb2's counts were reset")
	}
}

// TestScopesStable: a rate bound to a named scope keeps its state under
// the name, whatever index it comes with: a reload that reorders routes
// (while connections still use the old config) keeps each client's state
// with its rule. A route that goes away and comes back starts afresh; an
// unbound rate keeps its state by index and is never replicated.
func TestScopesStable(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	tbl := New(100, c.now)
	tbl.SetOnPending(func() {})
	api, web := Scope{Name: "route path_prefix=/api", Rate: hour10}, Scope{Name: "route path_prefix=/", Rate: hour10}
	oldAPI := tbl.Bind(api) // index 1
	tbl.SetScopes([]Scope{{Name: ListenerScope}, api, web})
	for range 10 {
		tbl.Allow(client, 1, oldAPI)
	}
	newWeb, newAPI := tbl.Bind(web), tbl.Bind(api) // reordered: indexes 1 and 2
	tbl.SetScopes([]Scope{{Name: ListenerScope}, web, api})
	if ok, _ := tbl.Allow(client, 2, newAPI); ok {
		t.Error("the /api route's state was lost when the routes were reordered")
	}
	if ok, _ := tbl.Allow(client, 1, newWeb); !ok {
		t.Error("the / route got the /api route's state")
	}
	if ok, _ := tbl.Allow(client, 1, oldAPI); ok {
		t.Error("a connection still on the old config reached another state for /api")
	}
	tbl.SetScopes([]Scope{{Name: ListenerScope}, web})
	again := tbl.Bind(api)
	tbl.SetScopes([]Scope{{Name: ListenerScope}, web, api})
	if ok, _ := tbl.Allow(client, 2, again); !ok {
		t.Error("a route removed and added again kept its old state")
	}
	tbl.Drain(nil)
	tbl.Allow(client, 5, hour10)
	if d := tbl.Drain(nil); len(d) != 0 {
		t.Errorf("an unbound rate was replicated: %+v", d)
	}
}

// TestPeerHeldNotEvicted: a client whose connections are open at a peer
// is not evicted to make room.
func TestPeerHeldNotEvicted(t *testing.T) {
	tbl := New(64, nil)
	tbl.SetScopes(scopes(hour10))
	src := Source{Node: "lb2", Session: 1}
	tbl.Apply(src, Change{Kind: KindConns, Addr: client, N: 1})
	for i := range 10000 {
		tbl.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 0, hour10)
	}
	if got := tbl.Inspect(client).Peers["lb2"]; got != 1 {
		t.Fatalf("lb2's connection was forgotten by eviction (got %d)", got)
	}
	if tbl.Open(client, 1) {
		t.Fatal("opened a connection over the limit with lb2 holding one")
	}
}
