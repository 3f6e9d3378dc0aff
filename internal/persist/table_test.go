package persist

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time           { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration)      { c.ns.Add(int64(d)) }
func (c *clock) Unix(sec int64) time.Time { return time.Unix(c.Now().Unix()+sec, 0) }

func TestPinLookupDelete(t *testing.T) {
	tb := NewTable(Options{Now: newClock().Now})
	if _, ok := tb.Lookup([]byte("k")); ok {
		t.Fatal("empty table found k")
	}
	if !tb.Pin([]byte("k"), "a") || !tb.PinString("j", "b") {
		t.Fatal("Pin refused a valid key")
	}
	if got, ok := tb.Lookup([]byte("k")); !ok || got != "a" {
		t.Errorf("Lookup(k) = %q, %v; want a, true", got, ok)
	}
	if got, ok := tb.LookupString("j"); !ok || got != "b" {
		t.Errorf("LookupString(j) = %q, %v; want b, true", got, ok)
	}
	tb.Pin([]byte("k"), "b") // re-pin (redispatch)
	if got, _ := tb.LookupString("k"); got != "b" {
		t.Errorf("after re-pin got %q, want b", got)
	}
	if want := map[string]int{"b": 2}; !maps.Equal(tb.Counts(), want) {
		t.Errorf("Counts = %v, want %v", tb.Counts(), want)
	}
	if !tb.Delete("k") || tb.Delete("k") {
		t.Error("Delete(k) twice: want true then false")
	}
	if _, ok := tb.LookupString("k"); ok {
		t.Error("deleted key still found")
	}
	if tb.Len() != 1 {
		t.Errorf("Len = %d, want 1", tb.Len())
	}
	for _, bad := range []struct{ key, srv string }{{"", "a"}, {"k", ""}, {string(make([]byte, MaxKeyLen+1)), "a"}} {
		if tb.PinString(bad.key, bad.srv) {
			t.Errorf("PinString(len %d, %q) accepted", len(bad.key), bad.srv)
		}
	}
}

func TestIdleExpiry(t *testing.T) {
	c := newClock()
	tb := NewTable(Options{Now: c.Now, Timeout: time.Minute})
	tb.PinString("used", "a")
	tb.PinString("idle", "a")
	for range 3 {
		c.Add(40 * time.Second)
		if _, ok := tb.LookupString("used"); !ok {
			t.Fatal("a key used every 40s expired with a 1m timeout")
		}
	}
	if _, ok := tb.LookupString("idle"); ok {
		t.Error("idle key found after 2m with a 1m timeout")
	}
	if _, ok := tb.Peek("used"); !ok {
		t.Error("Peek(used) missing")
	}
	c.Add(59 * time.Second)
	if _, ok := tb.Peek("used"); !ok {
		t.Error("Peek does not expire before the timeout")
	}
	c.Add(time.Second)
	if _, ok := tb.Peek("used"); ok {
		t.Error("Peek found a key idle for exactly the timeout")
	}
	if n := tb.Sweep(); n != 1 { // "idle" was removed by its lookup
		t.Errorf("Sweep removed %d, want 1", n)
	}
	if tb.Len() != 0 || len(tb.Counts()) != 0 {
		t.Errorf("after sweep Len = %d, Counts = %v; want empty", tb.Len(), tb.Counts())
	}
}

func TestEvictionOrder(t *testing.T) {
	c := newClock()
	tb := NewTable(Options{Now: c.Now, MaxEntries: 3})
	for _, k := range []string{"a", "b", "c"} {
		tb.PinString(k, "s1")
		c.Add(time.Second)
	}
	tb.LookupString("a") // a is now the most recently used; b the oldest
	tb.PinString("d", "s2")
	if _, ok := tb.Peek("b"); ok {
		t.Error("b survived; want the oldest idle key evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := tb.Peek(k); !ok {
			t.Errorf("%s evicted, want kept", k)
		}
	}
	if want := map[string]int{"s1": 2, "s2": 1}; !maps.Equal(tb.Counts(), want) {
		t.Errorf("Counts = %v, want %v", tb.Counts(), want)
	}
	// A new server name whose first key evicts the only key of another.
	tb2 := NewTable(Options{Now: c.Now, MaxEntries: 1})
	tb2.PinString("x", "s1")
	tb2.PinString("y", "s2")
	tb2.PinString("z", "s3")
	if want := map[string]int{"s3": 1}; !maps.Equal(tb2.Counts(), want) {
		t.Errorf("Counts = %v, want %v", tb2.Counts(), want)
	}
	if got, _ := tb2.LookupString("z"); got != "s3" {
		t.Errorf("z = %q, want s3", got)
	}
}

func TestBounded(t *testing.T) {
	tb := NewTable(Options{Now: newClock().Now, MaxEntries: 5000})
	for i := range 20000 {
		tb.PinString(fmt.Sprint("key", i), "s")
	}
	if n := tb.Len(); n > 5000 || n < 4000 {
		t.Errorf("Len = %d, want at most 5000 (and not far below)", n)
	}
	if _, ok := tb.Peek("key19999"); !ok {
		t.Error("newest key evicted")
	}
}

func TestDeleteServer(t *testing.T) {
	tb := NewTable(Options{Now: newClock().Now})
	for i := range 100 {
		tb.PinString(fmt.Sprint(i), []string{"a", "b"}[i%2])
	}
	if n := tb.DeleteServer("a"); n != 50 {
		t.Errorf("DeleteServer = %d, want 50", n)
	}
	if want := map[string]int{"b": 50}; !maps.Equal(tb.Counts(), want) {
		t.Errorf("Counts = %v, want %v", tb.Counts(), want)
	}
}

func TestChangeHookAndApply(t *testing.T) {
	c := newClock()
	var got []Change
	tb := NewTable(Options{Now: c.Now, Timeout: 40 * time.Second, OnChange: func(ch Change) { got = append(got, ch) }})
	tb.PinString("k", "a")
	tb.LookupString("k") // within refresh (10s): no change
	c.Add(10 * time.Second)
	tb.LookupString("k") // refresh due
	tb.PinString("k", "b")
	tb.Delete("k")
	want := []Change{
		{OpSet, "k", "a", c.Unix(-10)},
		{OpSet, "k", "a", c.Unix(0)},
		{OpSet, "k", "b", c.Unix(0)},
		{Op: OpDelete, Key: "k"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes\ngot  %v\nwant %v", got, want)
	}

	// Applying them to a peer reproduces the table and emits nothing.
	var echoed int
	peer := NewTable(Options{Now: c.Now, Timeout: 40 * time.Second, OnChange: func(Change) { echoed++ }})
	for _, ch := range want[:3] {
		peer.Apply(ch)
	}
	if e, ok := peer.Peek("k"); !ok || e.Server != "b" || !e.Seen.Equal(c.Now().Truncate(time.Second)) {
		t.Errorf("peer has %+v, %v; want k -> b seen now", e, ok)
	}
	peer.Apply(want[3])
	if _, ok := peer.Peek("k"); ok {
		t.Error("peer kept k after an applied delete")
	}
	if echoed != 0 {
		t.Errorf("Apply emitted %d changes, want 0", echoed)
	}

	// Last writer wins; an expired remote write is ignored.
	peer.PinString("x", "local")
	peer.Apply(Change{Op: OpSet, Key: "x", Server: "remote", Seen: c.Unix(-5)})
	if e, _ := peer.Peek("x"); e.Server != "local" {
		t.Errorf("older remote write replaced a newer local one: %+v", e)
	}
	c.Add(time.Second)
	peer.Apply(Change{Op: OpSet, Key: "x", Server: "remote", Seen: c.Unix(0)})
	if e, _ := peer.Peek("x"); e.Server != "remote" {
		t.Errorf("newer remote write lost: %+v", e)
	}
	peer.Apply(Change{Op: OpSet, Key: "old", Server: "a", Seen: c.Unix(-41)})
	if _, ok := peer.Peek("old"); ok {
		t.Error("expired remote write applied")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tb := NewTable(Options{})
	var hooked int
	tb.SetOnChange(func(Change) { hooked++ })
	key := []byte("ASP.NET_SessionId-0123456789abcdef")
	tb.Pin(key, "web1")
	for name, f := range map[string]func(){
		"Lookup":       func() { tb.Lookup(key) },
		"LookupString": func() { tb.LookupString("ASP.NET_SessionId-0123456789abcdef") },
		"LookupMiss":   func() { tb.Lookup([]byte("nope")) },
		"PinExisting":  func() { tb.Pin(key, "web1") },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

// TestConcurrent hammers one table from many goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	c := newClock()
	var changes atomic.Int64
	tb := NewTable(Options{Now: c.Now, MaxEntries: 2000, Shards: 8, OnChange: func(Change) { changes.Add(1) }})
	servers := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			key := make([]byte, 0, 16)
			for i := range 5000 {
				key = fmt.Appendf(key[:0], "k%d", (i*7+g)%3000)
				switch i % 5 {
				case 0:
					tb.Pin(key, servers[i%3])
				case 1:
					tb.Delete(string(key))
				case 2:
					tb.Apply(Change{Op: OpSet, Key: string(key), Server: servers[g%3], Seen: c.Now()})
				case 3:
					c.Add(time.Millisecond)
					tb.Lookup(key)
				default:
					tb.Lookup(key)
				}
				if i%1000 == 0 {
					tb.Counts()
					tb.Range(func(Entry) bool { return true })
					tb.Sweep()
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range tb.Counts() {
		total += n
	}
	if total != tb.Len() || total > 2000 {
		t.Errorf("sum of Counts = %d, Len = %d; want equal and at most 2000", total, tb.Len())
	}
	seen := 0
	tb.Range(func(Entry) bool { seen++; return true })
	if seen != total {
		t.Errorf("Range saw %d entries, want %d", seen, total)
	}
	if changes.Load() == 0 {
		t.Error("no changes emitted")
	}
}

func TestSetMaxEntriesKeepsRecent(t *testing.T) {
	tbl := NewTable(Options{MaxEntries: 8192, Timeout: time.Hour})
	for i := 0; i < 4096; i++ {
		tbl.PinString(fmt.Sprintf("k%05d", i), "a")
	}
	// Touch the first 500 keys: they become the most recently used.
	for i := 0; i < 500; i++ {
		if _, ok := tbl.LookupString(fmt.Sprintf("k%05d", i)); !ok {
			t.Fatalf("k%05d missing before the resize", i)
		}
	}
	tbl.SetMaxEntries(2048)
	if n := tbl.Len(); n > 2048 {
		t.Fatalf("%d entries after shrinking to 2048", n)
	}
	for i := 0; i < 500; i++ {
		if _, ok := tbl.Peek(fmt.Sprintf("k%05d", i)); !ok {
			t.Fatalf("recently used k%05d evicted by the shrink", i)
		}
	}
	tbl.SetMaxEntries(8192)
	tbl.PinString("new", "b")
	if _, ok := tbl.Peek("new"); !ok {
		t.Fatal("growing the bound lost a new pin")
	}
}
