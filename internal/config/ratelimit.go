package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// RateLimit limits each client address. Request rates count the settled
// address (after PROXY headers and trusted forwarding headers); connections
// are counted before any request is read, so they count the connection's
// peer (the PROXY header's source when one was accepted): behind a trusted
// HTTP proxy that does not send PROXY headers, its clients share one
// connection allowance. A request over the rate gets 429 with Retry-After;
// a connection over the count gets 429 and is closed.
type RateLimit struct {
	// Requests per Per (key requests, with per).
	Requests int
	// Per is the period (key per, default 1s).
	Per time.Duration
	// Burst is how many requests may come at once beyond the steady rate
	// (key burst, default: requests).
	Burst int
	// Connections bounds open connections per peer address (key
	// connections, listener only; 0: unlimited).
	Connections int
}

func (d *decoder) rateLimit(dst **RateLimit) setter {
	return func(v *yaml.Node, path string) {
		r := &RateLimit{}
		d.fields(v, path, map[string]setter{
			"requests":    d.integer(&r.Requests),
			"per":         d.duration(&r.Per),
			"burst":       d.integer(&r.Burst),
			"connections": d.integer(&r.Connections),
		})
		*dst = r
	}
}

// rateLimit validates and defaults one rate_limit section; routes may not
// bound connections (a connection is not yet routed).
func (v *validator) rateLimit(r *RateLimit, path string, route bool) {
	if r == nil || v.bad[path] {
		return
	}
	if r.Per == 0 {
		r.Per = time.Second
	} else {
		v.positive(join(path, "per"), r.Per)
	}
	v.atLeast(join(path, "requests"), r.Requests, 0)
	v.atLeast(join(path, "burst"), r.Burst, 0)
	v.atLeast(join(path, "connections"), r.Connections, 0)
	if !v.present(join(path, "burst")) {
		r.Burst = r.Requests
	}
	if r.Requests == 0 && r.Connections == 0 {
		v.errf(path, "sets no limit: give requests (and per) or connections")
	}
	if route {
		v.onlyWith(path, false, "on a listener; a route limits requests", "connections")
	}
}
