package app

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fulcrumlb/fulcrum/internal/admin"
)

// The dashboard's view of the running graph: runtime implements
// admin.Inspector next to admin.Runtime.
var _ admin.Inspector = runtime{}

// Topology lists the running listeners with their bound addresses and
// routes, in config order.
func (r runtime) Topology() []admin.ListenerInfo {
	g := r.a.g.Load()
	if g == nil {
		return nil
	}
	out := make([]admin.ListenerInfo, 0, len(g.cfg.Listeners))
	for i := range g.cfg.Listeners {
		lc := &g.cfg.Listeners[i]
		li := admin.ListenerInfo{Name: lc.Name, Address: lc.Listen, Protocol: lc.Protocol}
		if addr := r.a.ListenerAddr(lc.Name); addr != nil {
			li.Address = addr.String()
		}
		if lc.Protocol == "tcp" || len(lc.Routes) == 0 {
			li.Routes = []admin.RouteInfo{{Rule: "*", Pool: lc.Pool}}
		}
		if lc.Protocol != "tcp" {
			for j, rc := range lc.Routes {
				rule := strings.TrimSpace(strings.TrimPrefix(routeName(j, rc), "#"+strconv.Itoa(j)))
				if rule == "" {
					rule = "*"
				}
				li.Routes = append(li.Routes, admin.RouteInfo{Rule: rule, Pool: rc.Pool})
			}
		}
		out = append(out, li)
	}
	return out
}

// HealthHistory returns a server's keepalive transitions, oldest first.
func (r runtime) HealthHistory(poolName, server string) ([]admin.HealthChange, bool) {
	c := r.a.health.Checker(poolName, server)
	if c == nil {
		return nil, false
	}
	hist := c.History()
	out := make([]admin.HealthChange, len(hist))
	for i, tr := range hist {
		out[i] = admin.HealthChange{At: tr.At, To: tr.To.String(), Reason: tr.Reason}
	}
	return out, true
}

// LastReply returns the newest keepalive result with what came back.
func (r runtime) LastReply(poolName, server string) (admin.Reply, bool) {
	c := r.a.health.Checker(poolName, server)
	if c == nil {
		return admin.Reply{}, false
	}
	res, ok := c.Last()
	if !ok {
		return admin.Reply{}, false
	}
	return admin.Reply{At: res.At, OK: res.OK, Reason: res.Reason, Hash: res.Hash,
		Reference: c.ReferenceHash(), Body: res.Received}, true
}

// StateStats reads the state service's gauges and counters from its
// collector (the numbers /metrics exports).
func (r runtime) StateStats() (admin.StateStats, bool) {
	if r.a.state == nil {
		return admin.StateStats{}, false
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(r.a.state.srv.Collector()); err != nil {
		return admin.StateStats{}, false
	}
	families, err := reg.Gather()
	if err != nil {
		return admin.StateStats{}, false
	}
	var st admin.StateStats
	fields := map[string]*float64{
		"fulcrum_state_sessions":            &st.Sessions,
		"fulcrum_state_locks_held":          &st.LocksHeld,
		"fulcrum_state_lock_waiters":        &st.LockWaiters,
		"fulcrum_state_lock_waits_total":    &st.LockWaits,
		"fulcrum_state_lock_timeouts_total": &st.LockTimeouts,
		"fulcrum_state_locks_broken_total":  &st.LocksBroken,
		"fulcrum_state_expiries_total":      &st.Expiries,
	}
	for _, f := range families {
		dst := fields[f.GetName()]
		if dst == nil {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				*dst += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				*dst += m.GetCounter().GetValue()
			}
		}
	}
	return st, true
}
