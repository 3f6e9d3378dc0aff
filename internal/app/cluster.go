package app

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sync"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/cluster"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/limit"
)

// clusterState is the running persistence replication (cluster: section).
type clusterState struct {
	mu   sync.Mutex // guards c for the admin handler; apply holds a.reload too
	c    *cluster.Cluster
	cfg  *config.Cluster
	ring string // fingerprint of the ring the running cluster authenticates with
	// limits are the listeners' limit tables hooked to c (limits.go).
	limits map[string]*limit.Table
}

// applyCluster makes cfg's cluster section the running one (called at the
// end of apply, once the pools' tables exist): it starts the cluster on the
// first apply, keeps it across a reload that does not change the section or
// the key ring, and restarts it when they change. Every table-keeping pool's
// table is handed to it and its change hook pointed at it.
func (a *App) applyCluster(cfg *config.Config) error {
	cs := &a.cluster
	ring := ""
	if r := a.ring.Load(); r != nil {
		ring = r.Fingerprint()
	}
	if cs.c != nil && reflect.DeepEqual(cs.cfg, cfg.Cluster) && cs.ring == ring {
		a.wireTables(cfg, cs.c)
		return nil
	}
	old := cs.cfg
	a.stopCluster()
	if cfg.Cluster == nil {
		return nil
	}
	err := a.startCluster(cfg.Cluster, ring)
	if err != nil && old != nil {
		// Keep replicating with the previous section rather than not at all.
		if rerr := a.startCluster(old, ring); rerr != nil {
			a.log.Error("cluster: restarting the previous configuration", "err", rerr)
		}
	}
	if err != nil {
		return err
	}
	a.wireTables(cfg, cs.c)
	return nil
}

func (a *App) startCluster(cc *config.Cluster, ring string) error {
	o := cluster.Options{Node: cc.Node, Listen: cc.Listen, Logger: a.log.With("room", "cluster")}
	for _, p := range cc.Peers {
		o.Peers = append(o.Peers, cluster.Peer{Name: p.Name, Address: p.Address})
	}
	if cc.Store != nil {
		o.Redis = &cluster.RedisOptions{URL: cc.Store.URL, Prefix: cc.Store.Prefix}
	}
	if r := a.ring.Load(); r != nil {
		o.Ring = r
	}
	c, err := cluster.New(o)
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	a.cluster.mu.Lock()
	a.cluster.c, a.cluster.cfg, a.cluster.ring = c, cc, ring
	a.cluster.mu.Unlock()
	return nil
}

// wireTables gives c every running persistence table and routes each
// table's changes to it. A table replaced by this reload was retired with
// its hook; the new one is hooked here. The listeners' limit tables go
// with them (wireLimits).
func (a *App) wireTables(cfg *config.Config, c *cluster.Cluster) {
	a.wireLimits(c)
	m := map[string]cluster.Table{}
	for i := range cfg.Pools {
		name := cfg.Pools[i].Name
		if t := a.table(name); t != nil {
			m[name] = t
			t.SetOnChange(c.Hook(name))
		}
	}
	c.SetTables(m)
}

// stopCluster stops replication and unhooks the tables (shutdown, or a
// reload that changes or removes the section).
func (a *App) stopCluster() {
	cs := &a.cluster
	cs.mu.Lock()
	c := cs.c
	cs.c, cs.cfg = nil, nil
	cs.mu.Unlock()
	if c == nil {
		return
	}
	a.tables.mu.Lock()
	for _, lt := range a.tables.m {
		lt.table.SetOnChange(nil)
	}
	a.tables.mu.Unlock()
	for _, t := range cs.limits {
		t.SetOnPending(nil)
	}
	cs.limits = nil
	c.Stop()
}

// ClusterAddr is the bound replication endpoint, or nil.
func (a *App) ClusterAddr() net.Addr {
	a.cluster.mu.Lock()
	defer a.cluster.mu.Unlock()
	if a.cluster.c == nil {
		return nil
	}
	return a.cluster.c.Addr()
}

// mountCluster adds GET /api/v1/cluster: node, mode, each peer's (or the
// store's) link state, last sync, lag, queue, resyncs and errors.
func (a *App) mountCluster(srv *admin.Server) {
	srv.Mount("GET /api/v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.cluster.mu.Lock()
		c := a.cluster.c
		a.cluster.mu.Unlock()
		if c == nil {
			// Not clustered is a state, not an error: the dashboard shows it.
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"mode": "none", "note": "no cluster: section in the configuration"})
			return
		}
		c.ServeHTTP(w, r)
	}))
}
