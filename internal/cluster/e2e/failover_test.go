package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const nClients = 1000

// TestPairFailover: lb1 and lb2, peers of each other with the same key
// ring. 1,000 clients log in through lb1 and are pinned by their
// ASP.NET_SessionId; lb1 is killed with SIGKILL; through lb2 every client
// reaches the server holding its session. lb1 comes back with an empty
// data_dir (a replaced machine) and resyncs from lb2, including sessions
// that began while it was down.
func TestPairFailover(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	lb1, lb2 := newNode(t, "lb1"), newNode(t, "lb2")
	keys := keygen(t, t.TempDir())
	peer := func(self, other *lbNode) string {
		return fmt.Sprintf("  node: %s\n  listen: %s\n  peers: [{name: %s, address: %s}]", self.name, self.cluster, other.name, other.cluster)
	}
	cfg1 := lb1.writeConfig(t, keys, b, peer(lb1, lb2))
	cfg2 := lb2.writeConfig(t, keys, b, peer(lb2, lb1))
	lb1.start(t, cfg1)
	lb2.start(t, cfg2)
	waitFor(t, 10*time.Second, "the pair to connect both ways", func() bool {
		s1, s2 := lb1.status(t), lb2.status(t)
		return len(s1.Peers) == 1 && s1.Peers[0].Connected && s1.Peers[0].Inbound &&
			len(s2.Peers) == 1 && s2.Peers[0].Connected && s2.Peers[0].Inbound
	})

	c := newClients()
	c.login(t, lb1, nClients)
	d := waitFor(t, 10*time.Second, "lb2 to hold every session", func() bool { return lb2.entries(t) == nClients })
	t.Logf("lb2 held all %d sessions %s after the last login", nClients, d.Round(time.Millisecond))
	if d > time.Second {
		t.Errorf("replication took %s, want within 1s", d)
	}

	lb1.kill()
	if wrong := c.check(t, lb2); wrong != 0 {
		t.Fatalf("after lb1 was killed, %d of %d clients reached another server through lb2", wrong, nClients)
	}
	c.login(t, lb2, 100) // sessions lb1 never saw

	if err := os.RemoveAll(filepath.Join(lb1.dir, "data")); err != nil {
		t.Fatal(err)
	}
	lb1.start(t, cfg1)
	d = waitFor(t, 10*time.Second, "restarted lb1 to resync from lb2", func() bool { return lb1.entries(t) == c.count() })
	t.Logf("restarted lb1 held all %d sessions %s after it answered", c.count(), d.Round(time.Millisecond))
	sid, srv := c.anySession()
	var e struct{ Server string }
	if code := lb1.getJSON(t, "/api/v1/pools/app/persistence?key="+sid, &e); code != 200 || e.Server != srv {
		t.Errorf("lb1 entry for %s: status %d server %q, want 200 %q", sid, code, e.Server, srv)
	}
	if wrong := c.check(t, lb1, lb2); wrong != 0 {
		t.Fatalf("after lb1's restart, %d of %d clients reached another server", wrong, c.count())
	}
}

// TestRedisFailover: three nodes share the table through a real Redis
// (keys under a prefix of this run's own). Clients pinned through lb1
// reach their servers through lb2 and lb3 after lb1 is killed; lb1 comes
// back empty and is warmed from Redis.
func TestRedisFailover(t *testing.T) {
	t.Parallel()
	addr := os.Getenv("FULCRUM_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Redis is required (set FULCRUM_TEST_REDIS_ADDR or run make services): %v", err)
	}
	prefix := fmt.Sprintf("fulcrum-test:e2e:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})

	b := startBackends(t)
	keys := keygen(t, t.TempDir())
	var nodes []*lbNode
	var cfgs []string
	for _, name := range []string{"lb1", "lb2", "lb3"} {
		n := newNode(t, name)
		cl := fmt.Sprintf("  node: %s\n  store: {type: redis, url: \"redis://%s/0\", prefix: %q}", name, addr, prefix)
		cfgs = append(cfgs, n.writeConfig(t, keys, b, cl))
		nodes = append(nodes, n)
	}
	for i, n := range nodes {
		n.start(t, cfgs[i])
	}
	waitFor(t, 10*time.Second, "every node to reach redis", func() bool {
		for _, n := range nodes {
			if s := n.status(t); s.Store == nil || !s.Store.Connected {
				return false
			}
		}
		return true
	})
	lb1, lb2, lb3 := nodes[0], nodes[1], nodes[2]
	c := newClients()
	c.login(t, lb1, nClients)
	d := waitFor(t, 10*time.Second, "lb2 and lb3 to hold every session", func() bool {
		return lb2.entries(t) == nClients && lb3.entries(t) == nClients
	})
	t.Logf("lb2 and lb3 held all %d sessions %s after the last login", nClients, d.Round(time.Millisecond))

	lb1.kill()
	if wrong := c.check(t, lb2, lb3); wrong != 0 {
		t.Fatalf("after lb1 was killed, %d of %d clients reached another server", wrong, nClients)
	}
	if n, err := rdb.HLen(t.Context(), prefix+"t:app").Result(); err != nil || n != nClients {
		t.Errorf("redis hash: %d entries (%v), want %d", n, err, nClients)
	}
	if err := os.RemoveAll(filepath.Join(lb1.dir, "data")); err != nil {
		t.Fatal(err)
	}
	lb1.start(t, cfgs[0])
	waitFor(t, 10*time.Second, "restarted lb1 to be warmed from redis", func() bool { return lb1.entries(t) == nClients })
	if wrong := c.check(t, lb1); wrong != 0 {
		t.Fatalf("after lb1's restart, %d of %d clients reached another server", wrong, nClients)
	}
}
