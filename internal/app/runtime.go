package app

import (
	"fmt"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// runtime adapts App to what the admin API needs.
type runtime struct{ a *App }

var _ admin.Runtime = runtime{}

func (r runtime) Pools() []*pool.Pool { return r.a.Pools() }
func (r runtime) Reload() error       { return r.a.Reload() }

func (r runtime) LastCheck(poolName, server string) (admin.CheckSummary, bool) {
	c := r.a.health.Checker(poolName, server)
	if c == nil {
		return admin.CheckSummary{}, false
	}
	res, ok := c.Last()
	if !ok {
		return admin.CheckSummary{}, false
	}
	return admin.CheckSummary{OK: res.OK, At: res.At, DurationMS: float64(res.Duration.Microseconds()) / 1000, Reason: res.Reason}, true
}

func (r runtime) Checks(poolName, server string) (any, bool) {
	c := r.a.health.Checker(poolName, server)
	if c == nil {
		return nil, false
	}
	return map[string]any{
		"pool":           poolName,
		"server":         server,
		"state":          c.State(),
		"reference_hash": c.ReferenceHash(),
		"checks":         c.Results(),
		"history":        c.History(),
	}, true
}

func (r runtime) Rehash(poolName, server string) error {
	c := r.a.health.Checker(poolName, server)
	if c == nil {
		return fmt.Errorf("pool %q server %q has no keepalive", poolName, server)
	}
	c.Rehash()
	return nil
}

func (r runtime) Persistence(poolName string) (admin.PersistTable, bool) {
	t := r.a.table(poolName)
	if t == nil {
		return nil, false
	}
	return t, true
}
