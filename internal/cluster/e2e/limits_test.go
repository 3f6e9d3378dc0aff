package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The pair's limits: on listener web, 5 requests per hour with a burst of
// 4 (5 at once, then one every 12 minutes, so nothing comes back during
// the test); on listener conns, 4 open connections per client.
const (
	rateRequests = 5
	rateInterval = 12 * time.Minute
	connLimit    = 4
)

// TestPairLimits: lb1 and lb2 share rate_limit state over the peer link.
// A client alternating between them gets 5 requests through in total (not
// 5 per node), then 429 with Retry-After from both; 2 connections on lb1
// and 2 on lb2 use up a limit of 4 on both, and a closed one frees a place
// on the other node.
func TestPairLimits(t *testing.T) {
	t.Parallel()
	b := startBackends(t)
	lb1, lb2 := newNode(t, "lb1"), newNode(t, "lb2")
	keys := keygen(t, t.TempDir())
	conns := map[*lbNode]string{lb1: freePort(t), lb2: freePort(t)}
	lb1.start(t, writeLimitConfig(t, lb1, lb2, conns[lb1], keys, b))
	lb2.start(t, writeLimitConfig(t, lb2, lb1, conns[lb2], keys, b))
	waitFor(t, 10*time.Second, "the pair to connect both ways with protocol 2", func() bool {
		s1, s2 := lb1.status(t), lb2.status(t)
		return len(s1.Peers) == 1 && s1.Peers[0].Protocol == 2 && s1.Peers[0].Inbound &&
			len(s2.Peers) == 1 && s2.Peers[0].Protocol == 2 && s2.Peers[0].Inbound
	})

	t.Run("rate", func(t *testing.T) {
		hc := &http.Client{Timeout: 10 * time.Second}
		nodes := []*lbNode{lb1, lb2}
		admitted := 0
		refusedBy := map[string]int{}
		for i := range 12 {
			lb, other := nodes[i%2], nodes[(i+1)%2]
			resp, err := hc.Get("http://" + lb.web + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				admitted++
				// Let the other node hear of it: this test is about what
				// the pair admits, not about the replication lag.
				want := time.Duration(admitted)*rateInterval - time.Minute
				waitFor(t, 5*time.Second, other.name+" to hear of request "+strconv.Itoa(i), func() bool {
					return other.limits(t, "web").ahead() >= want
				})
			case http.StatusTooManyRequests:
				refusedBy[lb.name]++
				ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
				if err != nil || ra < 1 || ra > int(rateInterval/time.Second) {
					t.Errorf("%s: Retry-After %q, want 1 to %d seconds", lb.name, resp.Header.Get("Retry-After"), int(rateInterval/time.Second))
				}
			default:
				t.Fatalf("request %d through %s: status %d", i, lb.name, resp.StatusCode)
			}
		}
		if admitted != rateRequests {
			t.Errorf("the pair admitted %d requests, want %d in total", admitted, rateRequests)
		}
		if refusedBy["lb1"] == 0 || refusedBy["lb2"] == 0 {
			t.Errorf("refused by lb1 %d and lb2 %d times, want both to refuse", refusedBy["lb1"], refusedBy["lb2"])
		}
	})

	t.Run("connections", func(t *testing.T) {
		held := map[*lbNode][]net.Conn{}
		for _, lb := range []*lbNode{lb1, lb1, lb2, lb2} {
			c, status := openConn(t, conns[lb])
			if status != http.StatusOK {
				t.Fatalf("connection %d to %s: status %d, want 200 (under the limit)", len(held[lb])+1, lb.name, status)
			}
			held[lb] = append(held[lb], c)
		}
		waitPeers := func(lb *lbNode, peer string, n int) {
			t.Helper()
			waitFor(t, 5*time.Second, fmt.Sprintf("%s to count %d connections at %s", lb.name, n, peer), func() bool {
				return lb.limits(t, "conns").PeerConnections[peer] == n
			})
		}
		waitPeers(lb1, "lb2", 2)
		waitPeers(lb2, "lb1", 2)
		for _, lb := range []*lbNode{lb1, lb2} {
			if status := refusedConn(t, conns[lb]); status != http.StatusTooManyRequests {
				t.Fatalf("fifth connection to %s: status %d, want 429 (2 open on each node, limit %d)", lb.name, status, connLimit)
			}
		}
		held[lb1][0].Close()
		waitPeers(lb2, "lb1", 1)
		c, status := openConn(t, conns[lb2])
		if status != http.StatusOK {
			t.Fatalf("lb2 after lb1 closed one: status %d, want 200", status)
		}
		held[lb2] = append(held[lb2], c)
		waitPeers(lb1, "lb2", 3)
		if status := refusedConn(t, conns[lb1]); status != http.StatusTooManyRequests {
			t.Fatalf("lb1 with 1 open here and 3 at lb2: status %d, want 429", status)
		}
		for _, cs := range held {
			for _, c := range cs {
				c.Close()
			}
		}
		waitFor(t, 5*time.Second, "lb1 to see every connection closed", func() bool {
			l := lb1.limits(t, "conns")
			return l.Connections == 0 && l.PeerConnections["lb2"] == 0
		})
		for i := range connLimit {
			c, status := openConn(t, conns[lb1])
			if status != http.StatusOK {
				t.Fatalf("connection %d to lb1 once all closed: status %d, want 200", i+1, status)
			}
			defer c.Close()
		}
	})
}

// openConn opens a connection that should be admitted and returns it with
// the status of one request on it (200 when admitted: it stays open).
func openConn(t *testing.T, addr string) (net.Conn, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: conns\r\n\r\n"); err != nil {
		t.Fatalf("a new connection to %s: %v", addr, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a new connection to %s: %v", addr, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, resp.StatusCode
}

// refusedConn opens a connection that should be refused and returns what
// fulcrum answered without being asked (a refused connection gets 429 at
// once; an admitted one waits for a request: 0 after 5 s). Nothing is
// sent, so the refusal cannot be lost to a reset.
func refusedConn(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// clientLimits is GET /api/v1/limits for 127.0.0.1 (every test client).
type clientLimits struct {
	Connections     int
	PeerConnections map[string]int `json:"peer_connections"`
	Scopes          []struct {
		Scope        string
		AheadSeconds float64 `json:"ahead_seconds"`
	}
}

func (c clientLimits) ahead() time.Duration {
	for _, s := range c.Scopes {
		if s.Scope == "listener" {
			return time.Duration(s.AheadSeconds * float64(time.Second))
		}
	}
	return 0
}

func (n *lbNode) limits(t *testing.T, listener string) clientLimits {
	var v clientLimits
	n.getJSON(t, "/api/v1/limits?listener="+listener+"&client=127.0.0.1", &v)
	return v
}

// writeLimitConfig is a pair member's configuration with the two limited
// listeners in front of the backends.
func writeLimitConfig(t *testing.T, self, other *lbNode, connsAddr, keys string, b *backends) string {
	cfg := fmt.Sprintf(`admin: {listen: %s}
keyring: %s
data_dir: %s
log: {level: info}
cluster:
  node: %s
  listen: %s
  peers: [{name: %s, address: %s}]
listeners:
  - name: web
    listen: %s
    protocol: http
    pool: app
    rate_limit: {requests: %d, per: %s, burst: %d}
  - name: conns
    listen: %s
    protocol: http
    pool: app
    rate_limit: {connections: %d}
pools:
  - name: app
    balance: round_robin
    keepalive: {type: none}
    servers:
%s`, self.admin, keys, filepath.Join(self.dir, "data"), self.name, self.cluster, other.name, other.cluster,
		self.web, rateRequests, time.Duration(rateRequests)*rateInterval, rateRequests-1, connsAddr, connLimit, b.servers())
	path := filepath.Join(self.dir, "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
