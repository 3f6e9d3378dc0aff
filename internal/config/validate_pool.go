package config

import "regexp"

func (v *validator) pool(p *Pool, path string) {
	v.required(path, "name", "servers")
	v.name(join(path, "name"), p.Name)
	bal := join(path, "balance")
	v.oneOf(bal, p.Balance, "round_robin", "weighted", "least_conn", "source_hash", "uri_hash", "header_hash", "p2c")
	if v.ok(bal) && p.Balance == "header_hash" {
		if !v.present(join(path, "hash_header")) {
			v.errf(path, "missing required field %q (balance header_hash)", "hash_header")
		}
		if hp := join(path, "hash_header"); v.ok(hp) {
			v.check(hp, checkToken(p.HashHeader))
		}
	} else if !v.bad[bal] {
		v.onlyWith(path, false, "with balance header_hash", "hash_header")
	}
	sp := join(path, "servers")
	v.nonEmptyList(sp, len(p.Servers))
	v.unique(sp, len(p.Servers), func(i int) string { return p.Servers[i].Name }, "server")
	for i := range p.Servers {
		if s := index(sp, i); !v.bad[s] {
			v.server(&p.Servers[i], s)
		}
	}
	v.clientIP(p, path)
	v.between(join(path, "retries"), p.Retries, 0, 10)
	v.atLeast(join(path, "max_idle"), p.MaxIdle, 0)
	t := join(path, "timeouts")
	v.positive(join(t, "connect"), p.Timeouts.Connect)
	v.positive(join(t, "response"), p.Timeouts.Response)
	v.positive(join(t, "idle"), p.Timeouts.Idle)
	if kp := join(path, "keepalive"); !v.bad[kp] {
		v.keepalive(&p.Keepalive, kp)
	}
	if pp := join(path, "persistence"); !v.bad[pp] {
		v.persistence(&p.Persistence, pp)
	}
}

func (v *validator) server(s *Server, path string) {
	v.required(path, "name", "address")
	v.name(join(path, "name"), s.Name)
	if p := join(path, "address"); v.ok(p) {
		v.check(p, checkAddress(s.Address, false))
	}
	v.between(join(path, "weight"), s.Weight, 1, 1000)
	v.atLeast(join(path, "max_conns"), s.MaxConns, 0)
	q := join(path, "max_queue")
	v.atLeast(q, s.MaxQueue, 0)
	if v.ok(q) && s.MaxQueue > 0 && s.MaxConns == 0 && !v.bad[join(path, "max_conns")] {
		v.errf(q, "only allowed with max_conns (a queue forms when max_conns is reached)")
	}
}

var (
	httpKeys   = []string{"method", "path", "host", "expect_status", "hash", "hash_fleet", "hash_mask", "body_match", "body_reject", "reuse", "reuse_max"}
	timingKeys = []string{"interval", "down_interval", "timeout", "rise", "fall", "send_proxy"}
)

func (v *validator) keepalive(k *Keepalive, path string) {
	tp := join(path, "type")
	v.oneOf(tp, k.Type, "none", "tcp", "http", "script")
	if !v.bad[tp] {
		v.onlyWith(path, k.Type == "http", "with type http", httpKeys...)
		v.onlyWith(path, k.Type == "script", "with type script", "script")
		v.onlyWith(path, k.Type != "none", "when type is not none", timingKeys...)
		if k.Type == "script" && !v.present(join(path, "script")) {
			v.errf(path, "missing required field %q (type script)", "script")
		}
	}
	v.positive(join(path, "interval"), k.Interval)
	v.positive(join(path, "down_interval"), k.DownInterval)
	to, iv := join(path, "timeout"), join(path, "interval")
	v.positive(to, k.Timeout)
	if !v.bad[to] && !v.bad[iv] && k.Interval > 0 && k.Timeout > k.Interval {
		v.errf(to, "must not exceed interval (%s), got %s", k.Interval, k.Timeout)
	}
	v.atLeast(join(path, "rise"), k.Rise, 1)
	v.atLeast(join(path, "fall"), k.Fall, 1)
	if pp := join(path, "passive"); k.Passive != nil && !v.bad[pp] {
		v.atLeast(join(pp, "fall"), k.Passive.Fall, 1)
		v.positive(join(pp, "within"), k.Passive.Within)
	}
	if k.Type == "http" {
		v.httpKeepalive(k, path)
	}
	if k.Type == "script" {
		v.script(k, join(path, "script"))
	}
}

func (v *validator) httpKeepalive(k *Keepalive, path string) {
	mp := join(path, "method")
	v.oneOf(mp, k.Method, "HEAD", "GET")
	if p := join(path, "path"); v.ok(p) && (k.Path == "" || k.Path[0] != '/') {
		v.errf(p, "must start with \"/\", got %q", k.Path)
	}
	if p := join(path, "host"); v.ok(p) {
		v.check(p, checkHostHeader(k.Host))
	}
	sp := join(path, "expect_status")
	v.nonEmptyList(sp, len(k.ExpectStatus))
	for i, code := range k.ExpectStatus {
		p := index(sp, i)
		if !v.present(p) {
			p = sp // a single code
		}
		v.between(p, code, 100, 599)
	}
	if k.Method == "HEAD" && !v.bad[mp] {
		for _, key := range []string{"hash", "body_match", "body_reject"} {
			if p := join(path, key); v.present(p) && (key != "hash" || k.Hash) {
				v.errf(p, "requires method GET (a HEAD response has no body)")
			}
		}
	}
	if !k.Hash && !v.bad[join(path, "hash")] {
		if k.HashFleet {
			v.errf(join(path, "hash_fleet"), "only allowed with hash: true")
		}
		v.onlyWith(path, false, "with hash: true", "hash_mask")
	}
	k.HashMaskRe = make([]*regexp.Regexp, len(k.HashMask))
	for i, expr := range k.HashMask {
		p := index(join(path, "hash_mask"), i)
		if !v.present(p) {
			p = join(path, "hash_mask")
		}
		if v.ok(p) {
			k.HashMaskRe[i] = v.regexp(p, expr)
		}
	}
	if p := join(path, "body_match"); v.ok(p) {
		k.BodyMatchRe = v.regexp(p, k.BodyMatch)
	}
	if p := join(path, "body_reject"); v.ok(p) {
		k.BodyRejectRe = v.regexp(p, k.BodyReject)
	}
	if !k.Reuse && !v.bad[join(path, "reuse")] {
		v.onlyWith(path, false, "with reuse: true", "reuse_max")
	}
	v.between(join(path, "reuse_max"), k.ReuseMax, 1, maxReuseMax)
}

// maxReuseMax bounds reuse_max: at interval 1s, a new connection at least
// every 16 minutes.
const maxReuseMax = 1000

// builtinScripts are the conversations a script keepalive may name.
var builtinScripts = []string{"smtp", "pop3", "imap", "ftp", "redis", "http-head"}

func (v *validator) script(k *Keepalive, path string) {
	if !v.ok(path) {
		return
	}
	if k.Script == nil {
		v.oneOf(path, k.ScriptName, builtinScripts...)
		return
	}
	v.nonEmptyList(path, len(k.Script))
	for i := range k.Script {
		p := index(path, i)
		if v.bad[p] {
			continue
		}
		s := &k.Script[i]
		n := 0
		for _, key := range []string{"send", "expect", "reject", "tls"} {
			if v.present(join(p, key)) {
				n++
			}
		}
		if n != 1 {
			v.errf(p, "a step must have exactly one of send, expect, reject, tls; got %d", n)
			continue
		}
		switch {
		case v.ok(join(p, "send")) && s.Send == "":
			v.errf(join(p, "send"), "must not be empty")
		case v.ok(join(p, "expect")):
			s.ExpectRe = v.regexp(join(p, "expect"), s.Expect)
		case v.ok(join(p, "reject")):
			s.RejectRe = v.regexp(join(p, "reject"), s.Reject)
		case v.ok(join(p, "tls")) && !s.TLS:
			v.errf(join(p, "tls"), "must be true (a tls step starts TLS); remove the step instead")
		}
	}
}
