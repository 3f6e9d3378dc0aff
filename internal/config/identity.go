package config

import (
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file holds the client-identity keys: PROXY protocol in, trusted
// proxies, CORS per route, and how each pool's servers learn the client's
// address.

// CORS is a route's cross-origin policy, answered by fulcrum at the edge.
type CORS struct {
	// AllowOrigins are exact origins (scheme://host[:port]) or "*"
	// (refused with allow_credentials).
	AllowOrigins []string
	// AllowMethods answered to preflights; GET, HEAD and POST are always
	// allowed by the CORS rules themselves.
	AllowMethods []string
	// AllowHeaders a preflight may ask for (case-insensitive).
	AllowHeaders []string
	// ExposeHeaders lets the page's script read these response fields.
	ExposeHeaders []string
	// AllowCredentials lets cookies and authorization go along.
	AllowCredentials bool
	// MaxAge is how long a browser may cache a preflight answer; default 0
	// (not sent).
	MaxAge time.Duration
}

// stringList decodes a string or a list of strings.
func (d *decoder) stringList(dst *[]string) setter {
	return func(v *yaml.Node, path string) {
		d.oneOrList(v, path, func(v *yaml.Node, path string) {
			var s string
			d.str(&s)(v, path)
			*dst = append(*dst, s)
		})
	}
}

func (d *decoder) cors(v *yaml.Node, path string, r *Route) {
	r.CORS = &CORS{}
	c := r.CORS
	d.fields(v, path, map[string]setter{
		"allow_origins":     d.stringList(&c.AllowOrigins),
		"allow_methods":     d.stringList(&c.AllowMethods),
		"allow_headers":     d.stringList(&c.AllowHeaders),
		"expose_headers":    d.stringList(&c.ExposeHeaders),
		"allow_credentials": d.boolean(&c.AllowCredentials),
		"max_age":           d.duration(&c.MaxAge),
	})
}

// identityListener validates accept_proxy and trusted_proxies.
func (v *validator) identityListener(l *Listener, path string) {
	tp := join(path, "trusted_proxies")
	if v.ok(tp) {
		l.TrustedPrefixes = nil
		for i, s := range l.TrustedProxies {
			p, err := parsePrefix(s)
			if err != nil {
				v.errf(index(tp, i), "want an address or CIDR prefix like 10.0.0.0/8, got %q", s)
				continue
			}
			l.TrustedPrefixes = append(l.TrustedPrefixes, p)
		}
	}
	v.accessRules(l.Access, join(path, "access"))
	v.rateLimit(l.RateLimit, join(path, "rate_limit"), false)
	if l.AcceptProxy && len(l.TrustedProxies) == 0 && !v.bad[tp] {
		v.errf(join(path, "accept_proxy"), "needs trusted_proxies: only those addresses may send PROXY headers")
	}
}

// parsePrefix accepts a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// routeAccess validates a route's access rules.
func (v *validator) routeAccess(r *Route, path string) {
	v.accessRules(r.Access, join(path, "access"))
	v.rateLimit(r.RateLimit, join(path, "rate_limit"), true)
}

// cors validates a route's policy.
func (v *validator) cors(c *CORS, path string) {
	op := join(path, "allow_origins")
	v.required(path, "allow_origins")
	for i, o := range c.AllowOrigins {
		p := index(op, i)
		if o == "*" {
			if c.AllowCredentials {
				v.errf(p, `"*" cannot be used with allow_credentials: list the origins`)
			}
			continue
		}
		if msg := checkOrigin(o); msg != "" {
			v.errf(p, "%s", msg)
		}
	}
	for i, m := range c.AllowMethods {
		v.check(index(join(path, "allow_methods"), i), checkToken(m))
	}
	for i, h := range c.AllowHeaders {
		v.check(index(join(path, "allow_headers"), i), checkToken(h))
	}
	for i, h := range c.ExposeHeaders {
		v.check(index(join(path, "expose_headers"), i), checkToken(h))
	}
	if v.present(join(path, "max_age")) {
		v.positive(join(path, "max_age"), c.MaxAge)
	}
}

// checkOrigin wants scheme://host[:port] and nothing more.
func checkOrigin(o string) string {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || scheme != "http" && scheme != "https" || rest == "" || strings.ContainsAny(rest, "/?#@ ") {
		return "want an origin like https://app.example.com (scheme, host, optional port; no path), got \"" + o + "\""
	}
	return ""
}

// clientIP validates a pool's client_ip.
func (v *validator) clientIP(p *Pool, path string) {
	v.oneOf(join(path, "client_ip"), p.ClientIP, "none", "forwarded", "proxy_v1", "proxy_v2", "transparent")
}
