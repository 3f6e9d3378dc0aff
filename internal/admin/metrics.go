package admin

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// states lists every pool.State, so fulcrum_server_state exports one series
// per state (1 for the current one, 0 for the others) and a query like
// fulcrum_server_state{state="down"} == 1 never sees a series vanish.
var states = [...]pool.State{pool.StateUp, pool.StateDying, pool.StateDown, pool.StateDraining, pool.StateDisabled}

// poolCollector exports the servers' counters by reading the pools at scrape
// time, so the forwarding path does no metrics work of its own.
type poolCollector struct {
	rt Runtime

	requests, failures, changes, active, up, state, weight, latency *prometheus.Desc
}

var _ prometheus.Collector = (*poolCollector)(nil)

func newPoolCollector(rt Runtime) *poolCollector {
	ps := []string{"pool", "server"}
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("fulcrum_server_"+name, help, labels, nil)
	}
	return &poolCollector{
		rt:       rt,
		requests: desc("requests_total", "Completed requests (or TCP connections) per server.", ps),
		failures: desc("failures_total", "Requests that failed because of the server.", ps),
		changes:  desc("state_changes_total", "State changes of the server (keepalive verdicts and operator actions).", ps),
		active:   desc("active", "Requests or connections in flight.", ps),
		up:       desc("up", "1 if the server is reachable (up, dying or draining), else 0.", ps),
		state:    desc("state", "1 for the server's current state, 0 for the others.", []string{"pool", "server", "state"}),
		weight:   desc("weight", "The server's relative share of new clients.", ps),
		latency:  desc("latency_seconds", "Time from sending a request to the first byte of the response.", ps),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.failures, c.changes, c.active, c.up, c.state, c.weight, c.latency} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.rt.Pools() {
		for _, sv := range p.Servers() {
			c.collectServer(ch, p.Name(), sv)
		}
	}
}

func (c *poolCollector) collectServer(ch chan<- prometheus.Metric, poolName string, sv *pool.Server) {
	name := sv.Name()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(sv.Requests()), poolName, name)
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(sv.Failures()), poolName, name)
	ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(sv.Changes()), poolName, name)
	gauge(c.active, float64(sv.Active()), poolName, name)
	gauge(c.weight, float64(sv.Weight()), poolName, name)

	cur := sv.State()
	up := 0.0
	switch cur {
	case pool.StateUp, pool.StateDying, pool.StateDraining:
		up = 1
	}
	gauge(c.up, up, poolName, name)
	for _, st := range states {
		v := 0.0
		if st == cur {
			v = 1
		}
		gauge(c.state, v, poolName, name, string(st))
	}

	cum, count, sum := sv.Latency.Snapshot()
	buckets := make(map[float64]uint64, len(cum))
	for i, n := range cum {
		buckets[pool.Bounds[i]] = n
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, count, sum, buckets, poolName, name)
}

// registerMetrics fills reg with the pool collector, build info, and the Go
// runtime and process collectors.
func registerMetrics(reg *prometheus.Registry, rt Runtime, version string) error {
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "fulcrum_build_info",
		Help:        "Always 1; the version label names the running build.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	for _, c := range []prometheus.Collector{
		newPoolCollector(rt),
		build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering %T: %w", c, err)
		}
	}
	return nil
}

// metricsHandler serves reg in the Prometheus text (or negotiated) format.
// A collector error is logged and the remaining metrics are still served.
func metricsHandler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // counts promhttp's own errors
	})
}

// promLogger adapts slog to promhttp's Println logger.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error("admin: serving metrics", "err", fmt.Sprint(v...))
}
