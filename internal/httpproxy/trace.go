package httpproxy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/fulcrumlb/fulcrum/internal/balance"
)

// TraceQuery describes a request to explain.
type TraceQuery struct {
	Client netip.Addr
	Method string
	Host   string
	Path   string            // with any query
	Header map[string]string // e.g. Cookie, for persistence and header rules
}

// Trace explains one routing decision: how the client address was settled,
// which route and pool matched, what persistence found, which server was
// chosen and why.
type Trace struct {
	Listener     string `json:"listener"`
	Client       string `json:"client"`
	ClientFrom   string `json:"client_from"`
	Access       string `json:"access"`
	Route        string `json:"route,omitempty"`
	Pool         string `json:"pool,omitempty"`
	Balance      string `json:"balance,omitempty"`
	Persistence  string `json:"persistence,omitempty"`
	PersistKey   string `json:"persist_key,omitempty"`
	PersistEntry string `json:"persist_entry,omitempty"`
	Server       string `json:"server,omitempty"`
	ServerAddr   string `json:"server_address,omitempty"`
	ServerState  string `json:"server_state,omitempty"`
	Why          string `json:"why"`
}

// Trace explains where a request like q would go now. It looks at
// persistence without touching it; a balancer pick advances the balancer
// as a real request would.
func (h *Handler) Trace(q TraceQuery) Trace {
	cfg := h.cfg.Load()
	cc := &clientConn{h: h}
	cc.id.client, cc.id.derivedBy = q.Client.Unmap(), "query"
	cc.id.clientText = cc.id.client.AppendTo(nil)
	cc.req.method = []byte(q.Method)
	cc.req.host = []byte(q.Host)
	cc.req.target = []byte(q.Path)
	cc.req.path = cc.req.target
	for k, v := range q.Header {
		cc.req.fields = append(cc.req.fields, field{name: []byte(k), value: []byte(v)})
	}
	return cc.trace(cfg)
}

func (cc *clientConn) trace(cfg *Config) Trace {
	tr := Trace{Listener: cfg.Listener, Client: string(cc.id.clientText), ClientFrom: cc.id.derivedBy, Access: "allowed"}
	path := pathOnly(cc.req.path)
	if len(cfg.Access) > 0 && !cc.allowed(cfg.Access, path) {
		tr.Access, tr.Why = "denied by the listener's access rules", "403 Forbidden"
		return tr
	}
	target, rule, ok := cfg.Routes.Match(cc.req.host, path, cc.req.header)
	if !ok || target < 0 || target >= len(cfg.Targets) {
		tr.Why = "no route matches: 404"
		return tr
	}
	if rule < len(cfg.RouteNames) {
		tr.Route = cfg.RouteNames[rule]
	}
	t := cfg.Targets[target]
	tr.Pool, tr.Balance = t.Pool.Name(), t.Pool.Balance()
	if rule < len(cfg.RouteAccess) && len(cfg.RouteAccess[rule]) > 0 && !cc.allowed(cfg.RouteAccess[rule], path) {
		tr.Access, tr.Why = "denied by the route's access rules", "403 Forbidden"
		return tr
	}
	cc.findPin(t, true)
	if p := t.Persist; p != nil && p.Mode != PersistNone {
		tr.Persistence = [...]string{"none", "source_ip", "cookie", "app_cookie", "url"}[p.Mode]
		tr.PersistKey = string(cc.pin.key)
		switch {
		case cc.pin.valid:
			tr.PersistEntry = t.Pool.Servers()[cc.pin.server].Name()
		case cc.pin.stale && p.Fail:
			tr.Why = "the pinned server cannot take the request and on_down is fail: 503"
			return tr
		case cc.pin.stale:
			tr.PersistEntry = "(pinned server unavailable: redispatch)"
		}
	}
	idx := cc.pin.server
	if idx >= 0 {
		tr.Why = "persistence: pinned to this server"
	} else {
		var in balance.Input
		cc.hashKey(t, &in)
		idx = t.Picker.Pick(&in)
		tr.Why = "balanced by " + t.Pool.Balance()
		if in.HasKey {
			tr.Why += fmt.Sprintf(" on key %016x", in.Key)
		}
	}
	if idx < 0 {
		tr.Why = "no server available: 503"
		return tr
	}
	s := t.Pool.Servers()[idx]
	tr.Server, tr.ServerAddr, tr.ServerState = s.Name(), s.Address(), string(s.State())
	return tr
}

// traceField appends the X-Fulcrum-Trace response field that explains how
// a request that asked for it (from a trusted address) was routed: what
// actually happened to it.
func (cc *clientConn) traceField(cfg *Config, t *Target, idx int) {
	s := t.Pool.Servers()[idx]
	parts := []string{"client=" + string(cc.id.clientText) + " (" + cc.id.derivedBy + ")"}
	if cc.rule >= 0 && cc.rule < len(cfg.RouteNames) {
		parts = append(parts, "route="+cfg.RouteNames[cc.rule])
	}
	parts = append(parts, "pool="+t.Pool.Name(), "server="+s.Name(), "state="+string(s.State()))
	switch {
	case cc.pin.valid && cc.pin.server == idx:
		parts = append(parts, "why=persistence")
	case cc.pin.stale:
		parts = append(parts, "why=pinned server unavailable, redispatched by "+t.Pool.Balance())
	default:
		parts = append(parts, "why=balanced by "+t.Pool.Balance())
	}
	cc.extra = append(cc.extra, "X-Fulcrum-Trace: "...)
	cc.extra = append(cc.extra, strings.Join(parts, "; ")...)
	cc.extra = append(cc.extra, "\r\n"...)
}
