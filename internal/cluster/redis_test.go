package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisAddr is the test Redis: FULCRUM_TEST_REDIS_ADDR (default
// 127.0.0.1:6379). Tests fail, never skip, when it does not answer.
func redisAddr() string {
	if a := os.Getenv("FULCRUM_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// testPrefix returns a key prefix of this run's own and removes its keys
// when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "fulcrum-test:cluster:" + hex.EncodeToString(b) + ":"
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Redis is required (set FULCRUM_TEST_REDIS_ADDR or run make services): %v", err)
	}
	t.Cleanup(func() {
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return prefix
}

// TestRedisThreeNodes: three nodes share the table through Redis; a node
// started later is warmed from it; a delete reaches everyone.
func TestRedisThreeNodes(t *testing.T) {
	ro := &RedisOptions{URL: "redis://" + redisAddr() + "/0", Prefix: testPrefix(t)}
	var nodes []*node
	for _, name := range []string{"lb1", "lb2", "lb3"} {
		nodes = append(nodes, startNode(t, nodeOptions{name: name, redis: ro}))
	}
	waitFor(t, 5*time.Second, "all connected", func() bool {
		for _, n := range nodes {
			if !n.c.Status().Store.Connected {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond) // subscriptions confirmed
	for i := range 300 {
		nodes[i%3].table.PinString(key(i), "s"+string(rune('a'+i%3)))
	}
	waitFor(t, time.Second, "every node to hold 300 keys", func() bool {
		for _, n := range nodes {
			if n.table.Len() != 300 {
				return false
			}
		}
		return true
	})
	late := startNode(t, nodeOptions{name: "lb4", redis: ro})
	waitFor(t, 5*time.Second, "a late node warmed from redis", func() bool { return late.table.Len() == 300 })
	nodes[1].table.Delete(key(0))
	waitFor(t, time.Second, "the delete everywhere", func() bool {
		_, ok := late.table.Peek(key(0))
		_, ok0 := nodes[0].table.Peek(key(0))
		return !ok && !ok0
	})
}

// TestRedisOutage: with Redis unreachable the node keeps its local table
// and never blocks; when Redis returns the node resyncs (pushes what it
// learned meanwhile).
func TestRedisOutage(t *testing.T) {
	prefix := testPrefix(t)
	px := newProxy(t, redisAddr())
	a := startNode(t, nodeOptions{name: "lb1", redis: &RedisOptions{URL: "redis://" + px.addr() + "/0", Prefix: prefix}})
	b := startNode(t, nodeOptions{name: "lb2", redis: &RedisOptions{URL: "redis://" + redisAddr() + "/0", Prefix: prefix}})
	waitFor(t, 5*time.Second, "lb1 connected", func() bool { return a.c.Status().Store.Connected })
	px.cut()
	waitFor(t, 5*time.Second, "lb1 to notice", func() bool { return !a.c.Status().Store.Connected })
	start := time.Now()
	for i := range 200 {
		a.table.PinString(key(i), "s1")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("200 pins while redis is down took %s", d)
	}
	if v, ok := a.table.Peek(key(5)); !ok || v.Server != "s1" {
		t.Fatal("local table lost a write while redis was down")
	}
	px.restore()
	waitFor(t, 5*time.Second, "lb2 to get lb1's writes after the outage", func() bool { return b.table.Len() == 200 })
	if st := a.c.Status().Store; st.Errors == 0 || st.Resyncs < 2 {
		t.Errorf("status: got %+v, want errors and at least 2 resyncs", st)
	}
}

// proxy is a TCP proxy that can cut every connection and refuse new ones:
// Redis going away without stopping the shared test Redis.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); copyClose(u, c) }()
		go func() { defer p.wg.Done(); copyClose(c, u) }()
	}
}

func copyClose(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
