package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

func TestMetrics(t *testing.T) {
	h := newHarness(t, "")
	a, b := h.rt.server("app", "a"), h.rt.server("app", "b")
	for i := range 5 {
		a.Acquire()
		a.Latency.Observe(time.Duration(i+1) * 3 * time.Millisecond) // 3, 6, 9, 12, 15 ms
		a.Release(i == 4)
	}
	a.Acquire() // one in flight
	b.SetHealth(pool.HealthDown)
	h.rt.server("api", "api1").SetAdmin(pool.AdminDraining)

	r := h.do("GET", "/metrics", "")
	mustStatus(t, r, http.StatusOK)
	text := string(r.body)
	for _, want := range []string{
		`fulcrum_server_requests_total{pool="app",server="a"} 5`,
		`fulcrum_server_failures_total{pool="app",server="a"} 1`,
		`fulcrum_server_state_changes_total{pool="app",server="a"} 0`,
		`fulcrum_server_state_changes_total{pool="app",server="b"} 1`,
		`fulcrum_server_active{pool="app",server="a"} 1`,
		`fulcrum_server_requests_total{pool="app",server="b"} 0`,
		`fulcrum_server_weight{pool="app",server="b"} 3`,
		`fulcrum_server_up{pool="app",server="a"} 1`,
		`fulcrum_server_up{pool="app",server="b"} 0`,
		`fulcrum_server_up{pool="api",server="api1"} 1`,
		`fulcrum_server_state{pool="app",server="a",state="up"} 1`,
		`fulcrum_server_state{pool="app",server="a",state="down"} 0`,
		`fulcrum_server_state{pool="app",server="b",state="down"} 1`,
		`fulcrum_server_state{pool="app",server="b",state="up"} 0`,
		`fulcrum_server_state{pool="api",server="api1",state="draining"} 1`,
		`# TYPE fulcrum_server_latency_seconds histogram`,
		`fulcrum_server_latency_seconds_bucket{pool="app",server="a",le="0.005"} 1`,
		`fulcrum_server_latency_seconds_bucket{pool="app",server="a",le="0.01"} 3`,
		`fulcrum_server_latency_seconds_bucket{pool="app",server="a",le="0.025"} 5`,
		`fulcrum_server_latency_seconds_bucket{pool="app",server="a",le="+Inf"} 5`,
		`fulcrum_server_latency_seconds_sum{pool="app",server="a"} 0.045`,
		`fulcrum_server_latency_seconds_count{pool="app",server="a"} 5`,
		`fulcrum_server_latency_seconds_count{pool="api",server="api1"} 0`,
		`# TYPE fulcrum_server_requests_total counter`,
		`# TYPE fulcrum_server_active gauge`,
		`fulcrum_build_info{version="v1.2.3-test"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if n := strings.Count(text, `fulcrum_server_state{pool="app",server="a",`); n != 5 {
		t.Errorf("server a has %d state series, want 5 (one per state)", n)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

// TestMetricsFollowReload checks the collector reads the pools at scrape time.
func TestMetricsFollowReload(t *testing.T) {
	h := newHarness(t, "")
	h.rt.mu.Lock()
	h.rt.pools = []*pool.Pool{pool.New("new", "p2c", []*pool.Server{pool.NewServer("n1", "127.0.0.1:1", 2)})}
	h.rt.mu.Unlock()
	text := string(h.do("GET", "/metrics", "").body)
	if !strings.Contains(text, `fulcrum_server_weight{pool="new",server="n1"} 2`) {
		t.Errorf("metrics lack the reloaded pool")
	}
	if strings.Contains(text, `pool="app"`) {
		t.Errorf("metrics still show the old pool")
	}
}
