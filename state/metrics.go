package state

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus metrics; Server.Collector exposes
// them for the composition root to register.
type metrics struct {
	sessions, locked atomic.Int64 // the store's counts at the last sweep or stats call

	collectors   []prometheus.Collector
	lockWaits    prometheus.Counter
	lockTimeouts prometheus.Counter
	locksBroken  prometheus.Counter
	expiries     prometheus.Counter
	storeSeconds *prometheus.HistogramVec
}

func newMetrics(q *lockQueue) *metrics {
	m := &metrics{
		lockWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fulcrum_state_lock_waits_total",
			Help: "Lock requests that found the session locked and waited.",
		}),
		lockTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fulcrum_state_lock_timeouts_total",
			Help: "Lock requests answered 423 because the lock stayed held for their whole wait.",
		}),
		locksBroken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fulcrum_state_locks_broken_total",
			Help: "Locks broken because they were held longer than lock_timeout.",
		}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fulcrum_state_expiries_total",
			Help: "Sessions removed by the expiry sweep.",
		}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fulcrum_state_store_seconds",
			Help:    "Latency of store operations, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op"}),
	}
	m.collectors = []prometheus.Collector{
		m.lockWaits, m.lockTimeouts, m.locksBroken, m.expiries, m.storeSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fulcrum_state_sessions",
			Help: "Live sessions in the store (as of the last sweep).",
		}, func() float64 { return float64(m.sessions.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fulcrum_state_locks_held",
			Help: "Sessions whose exclusive lock is held (as of the last sweep).",
		}, func() float64 { return float64(m.locked.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fulcrum_state_lock_waiters",
			Help: "Requests of this process waiting for a lock now.",
		}, func() float64 { return float64(q.waiting()) }),
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors {
		c.Collect(ch)
	}
}
