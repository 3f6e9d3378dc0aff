package app

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/health"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/internal/route"
	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
)

// graph is one config turned into running parts: pools with their servers,
// pickers and upstream connection pools. It is immutable once built.
type graph struct {
	cfg     *config.Config
	pools   []*pool.Pool
	byName  map[string]*pool.Pool
	targets map[string]*httpproxy.Target
	checked map[*pool.Server]*health.Checker
}

// buildPools builds the pools of cfg, carrying over every server of prev that
// still exists with the same name and address (state and counters survive a
// reload), and the upstream connection pools of those servers.
func (a *App) buildPools(cfg *config.Config, prev *graph) (*graph, error) {
	g := &graph{cfg: cfg, byName: map[string]*pool.Pool{}, targets: map[string]*httpproxy.Target{}}
	for i := range cfg.Pools {
		pc := &cfg.Pools[i]
		var old *pool.Pool
		if prev != nil {
			old = prev.byName[pc.Name]
		}
		servers := make([]*pool.Server, len(pc.Servers))
		cands := make([]balance.Candidate, len(pc.Servers))
		for j, sc := range pc.Servers {
			var s *pool.Server
			if old != nil {
				if o := old.Server(sc.Name); o != nil && o.Address() == sc.Address {
					s = o
					s.SetWeight(sc.Weight)
				}
			}
			if s == nil {
				s = pool.NewServer(sc.Name, sc.Address, sc.Weight)
			}
			servers[j], cands[j] = s, s
		}
		p := pool.New(pc.Name, pc.Balance, servers)
		picker, err := balance.New(pc.Balance, cands)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", pc.Name, err)
		}
		t := &httpproxy.Target{
			Pool:            p,
			Picker:          picker,
			ConnectTimeout:  pc.Timeouts.Connect,
			ResponseTimeout: pc.Timeouts.Response,
			Retries:         pc.Retries,
			HashHeader:      pc.HashHeader,
			ClientIP:        clientIPModes[pc.ClientIP],
		}
		if t.ClientIP == httpproxy.ClientIPTransparent {
			if err := tcpproxy.CheckTransparent(); err != nil {
				return nil, fmt.Errorf("pool %q: %w", pc.Name, err)
			}
		}
		persistence, err := a.persistence(cfg, pc, servers, a.ring.Load(), onlyHTTPS(cfg, pc.Name))
		if err != nil {
			return nil, err
		}
		t.Persist = persistence
		switch pc.Balance {
		case "source_hash":
			t.HashBy = httpproxy.HashSource
		case "uri_hash":
			t.HashBy = httpproxy.HashURI
		case "header_hash":
			t.HashBy = httpproxy.HashHeader
		}
		for j, s := range servers {
			t.Upstreams = append(t.Upstreams, a.upstreamFor(s, httpproxy.UpstreamOptions{
				MaxIdle:     pc.MaxIdle,
				IdleTimeout: pc.Timeouts.Idle,
				MaxConns:    pc.Servers[j].MaxConns,
				MaxQueue:    pc.Servers[j].MaxQueue,
			}))
		}
		g.pools = append(g.pools, p)
		g.byName[p.Name()] = p
		g.targets[p.Name()] = t
	}
	return g, nil
}

// accessRules converts configured access rules for the forwarder.
func accessRules(rules []config.AccessRule) []httpproxy.AccessRule {
	var out []httpproxy.AccessRule
	for _, r := range rules {
		ar := httpproxy.AccessRule{Allow: r.Action == "allow", Prefixes: r.Prefixes, Methods: r.Methods, Path: r.PathRe}
		if r.Header != nil {
			ar.HeaderName, ar.HeaderValue = r.Header.Name, r.Header.ValueRe
		}
		out = append(out, ar)
	}
	return out
}

// onlyHTTPS reports whether every listener that routes to the pool is https:
// then fulcrum's persistence cookie is marked Secure.
func onlyHTTPS(cfg *config.Config, poolName string) bool {
	seen := false
	for _, l := range cfg.Listeners {
		uses := l.Pool == poolName
		for _, r := range l.Routes {
			uses = uses || r.Pool == poolName
		}
		if uses {
			if l.Protocol != "https" {
				return false
			}
			seen = true
		}
	}
	return seen
}

// healthSpecs lists the servers to check under cfg.
func healthSpecs(cfg *config.Config, g *graph) []health.Spec {
	var specs []health.Spec
	for i := range cfg.Pools {
		pc := &cfg.Pools[i]
		o := KeepaliveOptions(pc.Keepalive)
		if o.Type == health.TypeNone {
			continue
		}
		for _, s := range g.byName[pc.Name].Servers() {
			specs = append(specs, health.Spec{Pool: pc.Name, Target: healthTarget{s}, Options: o})
		}
	}
	return specs
}

// healthTarget adapts pool.Server to health.Target.
type healthTarget struct{ *pool.Server }

func (t healthTarget) SetHealth(h health.Health) bool { return t.Server.SetHealth(pool.Health(h)) }

// KeepaliveOptions converts a pool's keepalive config into health options.
func KeepaliveOptions(k config.Keepalive) health.Options {
	o := health.Options{
		Type:         health.Type(k.Type),
		Method:       k.Method,
		Path:         k.Path,
		Host:         k.Host,
		ExpectStatus: k.ExpectStatus,
		Hash:         k.Hash,
		HashFleet:    k.HashFleet,
		HashMask:     k.HashMaskRe,
		BodyMatch:    k.BodyMatchRe,
		BodyReject:   k.BodyRejectRe,
		Interval:     k.Interval,
		DownInterval: k.DownInterval,
		Timeout:      k.Timeout,
		Rise:         k.Rise,
		Fall:         k.Fall,
		SendProxy:    k.SendProxy,
		ScriptName:   k.ScriptName,
	}
	if k.Type == string(health.TypeHTTP) {
		o.ReuseMax = k.ReuseMax
		if !k.Reuse {
			o.ReuseMax = 1 // a new connection for every check
		}
	}
	for _, st := range k.Script {
		o.Script = append(o.Script, health.Step{Send: st.Send, Expect: st.ExpectRe, Reject: st.RejectRe, TLS: st.TLS})
	}
	if k.Passive != nil {
		o.Passive = health.Passive{Fall: k.Passive.Fall, Within: k.Passive.Within}
	}
	return o.WithDefaults()
}

// httpConfig builds the forwarding config of an HTTP(S) listener.
func httpConfig(lc *config.Listener, g *graph) (*httpproxy.Config, error) {
	hc := &httpproxy.Config{
		Listener:       lc.Name,
		TLS:            lc.Protocol == "https",
		ClientHeader:   lc.Timeouts.ClientHeader,
		ClientIdle:     lc.Timeouts.ClientIdle,
		ClientBody:     lc.Timeouts.ClientBody,
		TunnelIdle:     lc.Timeouts.TunnelIdle,
		MaxHeaderBytes: int(lc.Limits.MaxHeaderBytes),
		MaxBody:        lc.Limits.MaxBody,
		TrustedProxies: lc.TrustedPrefixes,
		Access:         accessRules(lc.Access),
	}
	if r := lc.RateLimit; r != nil {
		hc.Rate = rateOf(r)
		hc.ConnsPerClient = r.Connections
	}
	routes := lc.Routes
	if len(routes) == 0 && lc.Pool != "" {
		routes = []config.Route{{Pool: lc.Pool}}
	}
	index := map[string]int{}
	var rules []route.Rule
	for i, r := range routes {
		ti, ok := index[r.Pool]
		if !ok {
			t := g.targets[r.Pool]
			if t == nil {
				return nil, fmt.Errorf("listener %q: route %d: unknown pool %q", lc.Name, i, r.Pool)
			}
			ti = len(hc.Targets)
			index[r.Pool] = ti
			hc.Targets = append(hc.Targets, g.targets[r.Pool])
		}
		rule := route.Rule{Host: r.Host, PathPrefix: r.PathPrefix, Path: r.Path, Target: ti}
		if r.Header != nil {
			rule.HeaderName, rule.HeaderValue = r.Header.Name, r.Header.Value
		}
		rules = append(rules, rule)
		hc.RouteNames = append(hc.RouteNames, routeName(i, r))
		var cors *httpproxy.CORS
		if c := r.CORS; c != nil {
			cors = &httpproxy.CORS{AllowOrigins: c.AllowOrigins, AllowMethods: c.AllowMethods, AllowHeaders: c.AllowHeaders,
				ExposeHeaders: c.ExposeHeaders, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
			cors.Prepare()
		}
		hc.CORS = append(hc.CORS, cors)
		hc.RouteAccess = append(hc.RouteAccess, accessRules(r.Access))
		hc.RouteRate = append(hc.RouteRate, rateOf(r.RateLimit))
	}
	table, err := route.New(rules)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
	}
	hc.Routes = table
	return hc, nil
}

func routeName(i int, r config.Route) string {
	s := fmt.Sprintf("#%d", i)
	if r.Host != "" {
		s += " host=" + r.Host
	}
	if r.Path != "" {
		s += " path=" + r.Path
	}
	if r.PathPrefix != "" {
		s += " path_prefix=" + r.PathPrefix
	}
	if r.Header != nil {
		s += " header=" + r.Header.Name
	}
	return s
}

// tcpConfig builds the forwarding config of a TCP listener.
func tcpConfig(lc *config.Listener, g *graph, pc *config.Pool) *tcpproxy.Config {
	t := g.targets[lc.Pool]
	return &tcpproxy.Config{
		Listener:       lc.Name,
		Pool:           t.Pool,
		Picker:         t.Picker,
		HashSource:     pc.Balance == "source_hash",
		ConnectTimeout: pc.Timeouts.Connect,
		Retries:        max(pc.Retries, len(pc.Servers)-1),
		Idle:           lc.Timeouts.TunnelIdle,
		Observe:        t.Observe,
		ProxyHeader:    map[string]byte{"proxy_v1": 1, "proxy_v2": 2}[pc.ClientIP],
		Transparent:    pc.ClientIP == "transparent",
	}
}

// clientIPModes maps config values to the forwarder's modes.
var clientIPModes = map[string]httpproxy.ClientIP{
	"forwarded":   httpproxy.ClientIPForwarded,
	"none":        httpproxy.ClientIPNone,
	"proxy_v1":    httpproxy.ClientIPProxyV1,
	"proxy_v2":    httpproxy.ClientIPProxyV2,
	"transparent": httpproxy.ClientIPTransparent,
}

// tlsConfig is the server TLS config of an https listener: TLS 1.2 and up
// with forward-secret AEAD suites only (TLS 1.3's are fixed and all
// modern), certificates chosen by SNI, HTTP/2 and HTTP/1.1 offered by ALPN.
func tlsConfig(lc *config.Listener) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	for _, pair := range lc.TLS {
		if pair.Certificate != nil {
			c.Certificates = append(c.Certificates, *pair.Certificate)
		}
	}
	return c
}

// sameListener reports whether a running listener can be kept for lc: same
// address and protocol.
func sameListener(a, b *config.Listener) bool {
	return a.Listen == b.Listen && a.Protocol == b.Protocol && a.Limits.MaxConns == b.Limits.MaxConns
}

var _ = net.Listen
var _ = time.Second

// rateOf is a rate_limit section's request rate (none for nil).
func rateOf(r *config.RateLimit) limit.Rate {
	if r == nil {
		return limit.Rate{}
	}
	return limit.Rate{Requests: r.Requests, Per: r.Per, Burst: r.Burst}
}

// limitScopes names a listener's rates for its limit table: the listener's
// own, then route i's, each route named by its match, so that nodes with
// the same routes share states whatever their order, and a reload that
// reorders routes keeps them.
func limitScopes(lc *config.Listener) []limit.Scope {
	s := []limit.Scope{{Name: limit.ListenerScope, Rate: rateOf(lc.RateLimit)}}
	for _, r := range lc.Routes {
		s = append(s, limit.Scope{Name: routeScope(r), Rate: rateOf(r.RateLimit)})
	}
	return s
}

// bindRates binds hc's rates to their scopes' names in hc.Limits, so the
// forwarder's rule indexes (which a reload may reassign while connections
// still use this config) never decide whose state a request counts
// against. The scopes are put in force (SetScopes) when hc is.
func bindRates(hc *httpproxy.Config, lc *config.Listener) {
	sc := limitScopes(lc)
	hc.Rate = hc.Limits.Bind(sc[0])
	for i := range lc.Routes {
		hc.RouteRate[i] = hc.Limits.Bind(sc[i+1])
	}
}

// routeScope is a route's limit scope name: "route" and its match, e.g.
// "route host=shop.example path_prefix=/api header=x-tenant:a", or
// "route *" for a route matching everything. Two routes with the same
// match share it (the second is never reached anyway).
func routeScope(r config.Route) string {
	s := "route"
	if r.Host != "" {
		s += " host=" + r.Host
	}
	if r.Path != "" {
		s += " path=" + r.Path
	}
	if r.PathPrefix != "" {
		s += " path_prefix=" + r.PathPrefix
	}
	if r.Header != nil {
		s += " header=" + strings.ToLower(r.Header.Name) + ":" + r.Header.Value
	}
	if s == "route" {
		s += " *"
	}
	return s
}

// needsLimits reports whether a listener or one of its routes limits rates.
func needsLimits(lc *config.Listener) bool {
	if lc.RateLimit != nil {
		return true
	}
	for _, r := range lc.Routes {
		if r.RateLimit != nil {
			return true
		}
	}
	return false
}
