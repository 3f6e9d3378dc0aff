package cluster

import (
	"bytes"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/keyring"
)

func newRing(t testing.TB) *keyring.Ring {
	t.Helper()
	r, err := keyring.Generate(time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is one in-process cluster member with one pool's table and one
// listener's ("web") limit table.
type node struct {
	c      *Cluster
	table  *persist.Table
	limits *limit.Table
	logs   *logBuffer
}

type nodeOptions struct {
	name, listen string
	peers        []Peer
	ring         Ring
	redis        *RedisOptions
	queue        int
	maxEntries   int
	rate         limit.Rate       // the web listener's
	now          func() time.Time // the limit table's clock (nil: time.Now)
}

func startNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	logs := &logBuffer{}
	c, err := New(Options{Node: o.name, Listen: o.listen, Peers: o.peers, Ring: o.ring, Redis: o.redis,
		QueueLimit: o.queue, MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	tbl := persist.NewTable(persist.Options{MaxEntries: max(o.maxEntries, 100000)})
	c.SetTables(map[string]Table{"app": tbl})
	tbl.SetOnChange(c.Hook("app"))
	lt := limit.New(0, o.now)
	lt.SetScopes([]limit.Scope{{Name: limit.ListenerScope, Rate: o.rate}})
	c.SetLimits(map[string]Limits{"web": lt})
	lt.SetOnPending(c.LimitHook())
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return &node{c: c, table: tbl, limits: lt, logs: logs}
}

// pair starts two peers of each other sharing ring.
func pair(t testing.TB, ringA, ringB Ring) (a, b *node) {
	t.Helper()
	addrA, addrB := freeAddr(t), freeAddr(t)
	a = startNode(t, nodeOptions{name: "lb1", listen: addrA, peers: []Peer{{Name: "lb2", Address: addrB}}, ring: ringA})
	b = startNode(t, nodeOptions{name: "lb2", listen: addrB, peers: []Peer{{Name: "lb1", Address: addrA}}, ring: ringB})
	return a, b
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func key(i int) string { return "session-" + strconv.Itoa(i) }
