package app

import (
	"encoding/json"
	"net/http"
	"net/netip"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/cluster"
	"github.com/fulcrumlb/fulcrum/internal/limit"
)

// wireLimits shares every listener's limit table through c (peers mode;
// c keeps them per node in Redis mode and says so): a table new to c gets
// c's hook, one no longer running loses it. Called with a.reload held, after
// the listeners are committed.
func (a *App) wireLimits(c *cluster.Cluster) {
	cs := &a.cluster
	hook := c.LimitHook()
	running := map[string]*limit.Table{}
	shared := map[string]cluster.Limits{}
	for name, l := range a.listeners {
		if l.limits == nil {
			continue
		}
		running[name], shared[name] = l.limits, l.limits
		if cs.limits[name] != l.limits {
			l.limits.SetOnPending(hook)
		}
	}
	for name, t := range cs.limits {
		if running[name] != t {
			t.SetOnPending(nil)
		}
	}
	cs.limits = running
	c.SetLimits(shared)
}

// limitTable returns the named listener's limit table, or nil.
func (a *App) limitTable(name string) *limit.Table {
	a.reload.Lock()
	defer a.reload.Unlock()
	if l := a.listeners[name]; l != nil {
		return l.limits
	}
	return nil
}

// clientLimits is GET /api/v1/limits's answer.
type clientLimits struct {
	Listener string `json:"listener"`
	Client   string `json:"client"`
	// Connections are open through this node; PeerConnections through
	// the cluster's other nodes, as they last reported them.
	Connections     int            `json:"connections"`
	PeerConnections map[string]int `json:"peer_connections"`
	Scopes          []scopeLimits  `json:"scopes"`
}

type scopeLimits struct {
	Scope string `json:"scope"`
	// AheadSeconds is how far the client runs ahead of its steady rate
	// (0: its whole burst is available).
	AheadSeconds float64 `json:"ahead_seconds"`
	// RetryAfterSeconds is how long until its next request is admitted.
	RetryAfterSeconds float64 `json:"retry_after_seconds"`
}

// mountLimits adds GET /api/v1/limits?listener=NAME&client=IP: what this
// node holds for one client under a listener's rate_limit, including what
// the other nodes of a pair reported.
func (a *App) mountLimits(srv *admin.Server) {
	srv.Mount("GET /api/v1/limits", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		fail := func(status int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": msg})
		}
		client, err := netip.ParseAddr(q.Get("client"))
		if err != nil {
			fail(http.StatusBadRequest, "client: want an IP address, got "+strconvQuote(q.Get("client")))
			return
		}
		t := a.limitTable(q.Get("listener"))
		if t == nil {
			fail(http.StatusNotFound, "listener: no such listener with a rate_limit, got "+strconvQuote(q.Get("listener")))
			return
		}
		c := t.Inspect(client)
		res := clientLimits{Listener: q.Get("listener"), Client: client.String(), Connections: c.Connections, PeerConnections: c.Peers, Scopes: []scopeLimits{}}
		for _, s := range c.Scopes {
			res.Scopes = append(res.Scopes, scopeLimits{Scope: s.Scope, AheadSeconds: s.Ahead.Seconds(), RetryAfterSeconds: s.RetryAfter.Seconds()})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(res)
	}))
}
