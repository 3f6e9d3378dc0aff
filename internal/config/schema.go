package config

import "gopkg.in/yaml.v3"

// This file maps YAML keys to Config fields. Every list item is appended even
// when it fails to decode, so that index i in a slice is always item [i] in
// the file and later passes can compute the same paths.

func (d *decoder) config(root *yaml.Node) *Config {
	c := &Config{}
	d.fields(root, "", map[string]setter{
		"admin": func(v *yaml.Node, path string) {
			d.fields(v, path, map[string]setter{
				"listen":     d.str(&c.Admin.Listen),
				"token_file": d.str(&c.Admin.TokenFile),
				"hosts":      d.stringList(&c.Admin.Hosts),
			})
		},
		"log": func(v *yaml.Node, path string) {
			d.fields(v, path, map[string]setter{
				"level":  d.str(&c.Log.Level),
				"format": d.str(&c.Log.Format),
				"access": d.boolean(&c.Log.Access),
			})
		},
		"shutdown_timeout": d.duration(&c.ShutdownTimeout),
		"keyring":          d.str(&c.Keyring),
		"data_dir":         d.str(&c.DataDir),
		"listeners": func(v *yaml.Node, path string) {
			d.list(v, path, func(v *yaml.Node, path string) {
				c.Listeners = append(c.Listeners, d.listener(v, path))
			})
		},
		"pools": func(v *yaml.Node, path string) {
			d.list(v, path, func(v *yaml.Node, path string) {
				c.Pools = append(c.Pools, d.pool(v, path))
			})
		},
		"state":   func(v *yaml.Node, path string) { c.State = d.state(v, path) },
		"cluster": func(v *yaml.Node, path string) { c.Cluster = d.cluster(v, path) },
	})
	return c
}

func (d *decoder) listener(v *yaml.Node, path string) Listener {
	var l Listener
	t, lim := &l.Timeouts, &l.Limits
	d.fields(v, path, map[string]setter{
		"name":     d.str(&l.Name),
		"listen":   d.str(&l.Listen),
		"protocol": d.str(&l.Protocol),
		"tls": func(v *yaml.Node, path string) {
			d.oneOrList(v, path, func(v *yaml.Node, path string) {
				var c TLSCert
				d.fields(v, path, map[string]setter{
					"cert": d.str(&c.Cert),
					"key":  d.str(&c.Key),
				})
				l.TLS = append(l.TLS, c)
			})
		},
		"routes": func(v *yaml.Node, path string) {
			d.list(v, path, func(v *yaml.Node, path string) {
				l.Routes = append(l.Routes, d.route(v, path))
			})
		},
		"pool":            d.str(&l.Pool),
		"accept_proxy":    d.boolean(&l.AcceptProxy),
		"access":          d.access(&l.Access),
		"rate_limit":      d.rateLimit(&l.RateLimit),
		"trusted_proxies": d.stringList(&l.TrustedProxies),
		"timeouts": func(v *yaml.Node, path string) {
			d.fields(v, path, map[string]setter{
				"client_header": d.duration(&t.ClientHeader),
				"client_idle":   d.duration(&t.ClientIdle),
				"client_body":   d.duration(&t.ClientBody),
				"tunnel_idle":   d.duration(&t.TunnelIdle),
			})
		},
		"limits": func(v *yaml.Node, path string) {
			d.fields(v, path, map[string]setter{
				"max_header_bytes": d.size(&lim.MaxHeaderBytes),
				"max_body":         d.size(&lim.MaxBody),
				"max_conns":        d.integer(&lim.MaxConns),
			})
		},
	})
	return l
}

func (d *decoder) route(v *yaml.Node, path string) Route {
	var r Route
	d.fields(v, path, map[string]setter{
		"host":        d.str(&r.Host),
		"path_prefix": d.str(&r.PathPrefix),
		"path":        d.str(&r.Path),
		"header": func(v *yaml.Node, path string) {
			r.Header = &HeaderMatch{}
			d.fields(v, path, map[string]setter{
				"name":  d.str(&r.Header.Name),
				"value": d.str(&r.Header.Value),
			})
		},
		"pool":       d.str(&r.Pool),
		"cors":       func(v *yaml.Node, path string) { d.cors(v, path, &r) },
		"access":     d.access(&r.Access),
		"rate_limit": d.rateLimit(&r.RateLimit),
	})
	return r
}

func (d *decoder) pool(v *yaml.Node, path string) Pool {
	var p Pool
	t := &p.Timeouts
	d.fields(v, path, map[string]setter{
		"name":        d.str(&p.Name),
		"balance":     d.str(&p.Balance),
		"hash_header": d.str(&p.HashHeader),
		"servers": func(v *yaml.Node, path string) {
			d.list(v, path, func(v *yaml.Node, path string) {
				var s Server
				d.fields(v, path, map[string]setter{
					"name":      d.str(&s.Name),
					"address":   d.str(&s.Address),
					"weight":    d.integer(&s.Weight),
					"max_conns": d.integer(&s.MaxConns),
					"max_queue": d.integer(&s.MaxQueue),
				})
				p.Servers = append(p.Servers, s)
			})
		},
		"keepalive": func(v *yaml.Node, path string) { d.keepalive(v, path, &p.Keepalive) },
		"timeouts": func(v *yaml.Node, path string) {
			d.fields(v, path, map[string]setter{
				"connect":  d.duration(&t.Connect),
				"response": d.duration(&t.Response),
				"idle":     d.duration(&t.Idle),
			})
		},
		"persistence": func(v *yaml.Node, path string) {
			d.persistence(v, path, &p.Persistence)
		},
		"client_ip": d.str(&p.ClientIP),
		"retries":   d.integer(&p.Retries),
		"max_idle":  d.integer(&p.MaxIdle),
	})
	return p
}

func (d *decoder) keepalive(v *yaml.Node, path string, k *Keepalive) {
	d.fields(v, path, map[string]setter{
		"type":   d.str(&k.Type),
		"method": d.str(&k.Method),
		"path":   d.str(&k.Path),
		"host":   d.str(&k.Host),
		"expect_status": func(v *yaml.Node, path string) {
			d.oneOrList(v, path, func(v *yaml.Node, path string) {
				var code int
				d.integer(&code)(v, path)
				k.ExpectStatus = append(k.ExpectStatus, code)
			})
		},
		"hash":       d.boolean(&k.Hash),
		"hash_fleet": d.boolean(&k.HashFleet),
		"hash_mask": func(v *yaml.Node, path string) {
			d.oneOrList(v, path, func(v *yaml.Node, path string) {
				var re string
				d.str(&re)(v, path)
				k.HashMask = append(k.HashMask, re)
			})
		},
		"body_match":    d.str(&k.BodyMatch),
		"body_reject":   d.str(&k.BodyReject),
		"interval":      d.duration(&k.Interval),
		"down_interval": d.duration(&k.DownInterval),
		"timeout":       d.duration(&k.Timeout),
		"rise":          d.integer(&k.Rise),
		"fall":          d.integer(&k.Fall),
		"send_proxy":    d.boolean(&k.SendProxy),
		"reuse":         d.boolean(&k.Reuse),
		"reuse_max":     d.integer(&k.ReuseMax),
		"passive": func(v *yaml.Node, path string) {
			k.Passive = &Passive{}
			d.fields(v, path, map[string]setter{
				"fall":   d.integer(&k.Passive.Fall),
				"within": d.duration(&k.Passive.Within),
			})
		},
		"script": func(v *yaml.Node, path string) { d.script(v, path, k) },
	})
}

// script decodes either a built-in script name or a list of steps.
func (d *decoder) script(v *yaml.Node, path string, k *Keepalive) {
	n := d.resolve(v)
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		d.str(&k.ScriptName)(n, path)
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.mark(n, path)
		d.errNode(n, path, "expected a list of steps or a built-in script name, got %s", describe(n))
		return
	}
	k.Script = []ScriptStep{} // present but possibly empty: validate says so
	d.list(n, path, func(v *yaml.Node, path string) {
		var s ScriptStep
		d.fields(v, path, map[string]setter{
			"send":   d.str(&s.Send),
			"expect": d.str(&s.Expect),
			"reject": d.str(&s.Reject),
			"tls":    d.boolean(&s.TLS),
		})
		k.Script = append(k.Script, s)
	})
}
