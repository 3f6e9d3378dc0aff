package config

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
)

// validator checks a decoded, defaulted Config. Single-field checks run only
// on fields written in the file (defaults are valid by construction);
// checks across fields skip fields that failed to decode, whose mistake is
// already reported.
type validator struct {
	*book
	c   *Config
	dir string // relative file names are resolved against it
}

func validate(c *Config, b *book) {
	v := &validator{book: b, c: c, dir: filepath.Dir(c.File)}
	if c.State == nil { // a dedicated state host runs only the service
		v.required("", "listeners", "pools")
	}
	v.state(c.State)
	v.cluster(c.Cluster)
	v.nonEmptyList("listeners", len(c.Listeners))
	v.nonEmptyList("pools", len(c.Pools))
	if v.ok("admin.listen") {
		v.check("admin.listen", checkAddress(c.Admin.Listen, true))
	}
	if v.ok("admin.token_file") {
		c.Admin.TokenFile = v.file("admin.token_file", c.Admin.TokenFile)
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.positive("shutdown_timeout", c.ShutdownTimeout)
	v.keyringFile()

	v.unique("pools", len(c.Pools), func(i int) string { return c.Pools[i].Name }, "pool")
	v.unique("listeners", len(c.Listeners), func(i int) string { return c.Listeners[i].Name }, "listener")
	v.uniqueListen()
	for i := range c.Pools {
		if p := index("pools", i); !v.bad[p] {
			v.pool(&c.Pools[i], p)
		}
	}
	for i := range c.Listeners {
		if p := index("listeners", i); !v.bad[p] {
			v.listener(&c.Listeners[i], p)
		}
	}
}

// required reports each key missing from the mapping at path.
func (v *validator) required(path string, keys ...string) {
	if v.bad[path] {
		return
	}
	for _, k := range keys {
		if !v.present(join(path, k)) {
			v.errf(path, "missing required field %q", k)
		}
	}
}

// check reports problem at path unless it is "".
func (v *validator) check(path, problem string) {
	if problem != "" {
		v.errf(path, "%s", problem)
	}
}

func (v *validator) nonEmptyList(path string, n int) {
	if v.ok(path) && n == 0 {
		v.errf(path, "must not be empty")
	}
}

func (v *validator) oneOf(path, val string, allowed ...string) {
	if !v.ok(path) {
		return
	}
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.errf(path, "must be one of %s; got %q", strings.Join(allowed, ", "), val)
}

func (v *validator) positive(path string, d time.Duration) {
	if v.ok(path) && d <= 0 {
		v.errf(path, "must be a positive duration, got %q", d.String())
	}
}

func (v *validator) between(path string, n, lo, hi int) {
	if v.ok(path) && (n < lo || n > hi) {
		v.errf(path, "must be %d..%d, got %d", lo, hi, n)
	}
}

func (v *validator) atLeast(path string, n, lo int) {
	if v.ok(path) && n < lo {
		v.errf(path, "must be at least %d, got %d", lo, n)
	}
}

func (v *validator) name(path, name string) {
	if v.ok(path) {
		v.check(path, checkName(name))
	}
}

// onlyWith reports each key written under path although it only means
// something when cond holds; why says when that is.
func (v *validator) onlyWith(path string, cond bool, why string, keys ...string) {
	if cond {
		return
	}
	for _, k := range keys {
		if p := join(path, k); v.present(p) {
			v.errf(p, "only allowed %s", why)
		}
	}
}

// unique reports list items whose name repeats an earlier one.
func (v *validator) unique(list string, n int, name func(int) string, what string) {
	first := map[string]int{}
	for i := range n {
		p := join(index(list, i), "name")
		if !v.ok(p) || name(i) == "" {
			continue
		}
		if j, dup := first[name(i)]; dup {
			v.errf(p, "duplicate %s name %q (also %s)", what, name(i), index(list, j))
			continue
		}
		first[name(i)] = i
	}
}

// uniqueListen reports listen addresses used twice, admin's included.
func (v *validator) uniqueListen() {
	first := map[string]string{}
	if v.ok("admin.listen") {
		first[normalAddress(v.c.Admin.Listen)] = "admin.listen"
	}
	for i, l := range v.c.Listeners {
		p := join(index("listeners", i), "listen")
		if !v.ok(p) || l.Listen == "" {
			continue
		}
		key := normalAddress(l.Listen)
		if other, dup := first[key]; dup {
			v.errf(p, "address %s is already used by %s", l.Listen, other)
			continue
		}
		first[key] = p
	}
}

// file resolves name against the configuration's directory and checks that
// it is a readable regular file. It returns the resolved name.
func (v *validator) file(path, name string) string {
	if name == "" {
		v.errf(path, "must not be empty")
		return name
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(v.dir, name)
	}
	st, err := os.Stat(name)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		v.errf(path, "%s: %v", pe.Path, pe.Err)
	case err != nil:
		v.errf(path, "%v", err)
	case !st.Mode().IsRegular():
		v.errf(path, "%s is not a regular file", name)
	}
	return name
}

// regexp compiles the expression at path, reporting why it does not.
func (v *validator) regexp(path, expr string) *regexp.Regexp {
	if expr == "" {
		v.errf(path, "must not be empty")
		return nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			v.errf(path, "invalid regular expression: %s: %q", se.Code, se.Expr)
		} else {
			v.errf(path, "invalid regular expression: %v", err)
		}
		return nil
	}
	return re
}

func (v *validator) poolRef(path, name string) {
	if v.ok(path) && name != "" && v.c.Pool(name) == nil {
		v.errf(path, "unknown pool %q", name)
	}
}

func (v *validator) listener(l *Listener, path string) {
	v.required(path, "name", "listen", "protocol")
	v.name(join(path, "name"), l.Name)
	if p := join(path, "listen"); v.ok(p) {
		v.check(p, checkAddress(l.Listen, true))
	}
	proto := join(path, "protocol")
	v.oneOf(proto, l.Protocol, "http", "https", "tcp")
	t := join(path, "timeouts")
	v.positive(join(t, "client_header"), l.Timeouts.ClientHeader)
	v.positive(join(t, "client_idle"), l.Timeouts.ClientIdle)
	v.positive(join(t, "client_body"), l.Timeouts.ClientBody)
	v.positive(join(t, "tunnel_idle"), l.Timeouts.TunnelIdle)
	lim := join(path, "limits")
	if p := join(lim, "max_header_bytes"); v.ok(p) && l.Limits.MaxHeaderBytes <= 0 {
		v.errf(p, "must be positive, got %d", l.Limits.MaxHeaderBytes)
	}
	v.atLeast(join(lim, "max_conns"), l.Limits.MaxConns, 0)
	v.poolRef(join(path, "pool"), l.Pool)
	for i := range l.Routes {
		if p := index(join(path, "routes"), i); !v.bad[p] {
			v.route(&l.Routes[i], p)
		}
	}
	v.unreachableRoutes(l, path)
	v.identityListener(l, path)
	if !v.ok(proto) {
		return
	}
	switch l.Protocol {
	case "http", "https":
		v.httpListener(l, path)
	case "tcp":
		v.onlyWith(path, false, "with protocol http or https; a tcp listener uses pool", "routes")
		if !v.present(join(path, "pool")) {
			v.errf(path, "missing required field %q (protocol tcp)", "pool")
		}
	}
	v.onlyWith(path, l.Protocol == "https", "with protocol https", "tls")
}

func (v *validator) httpListener(l *Listener, path string) {
	routes, pool := join(path, "routes"), join(path, "pool")
	switch {
	case v.present(routes) && v.present(pool):
		v.errf(pool, "not allowed together with routes; add a last route with only pool instead")
	case v.present(pool):
		l.Routes = []Route{{Pool: l.Pool}}
	case v.present(routes):
		v.nonEmptyList(routes, len(l.Routes))
	default:
		v.errf(path, "missing required field %q or %q (protocol %s)", "routes", "pool", l.Protocol)
	}
	if l.Protocol != "https" {
		return
	}
	tp := join(path, "tls")
	if !v.present(tp) {
		v.errf(path, "missing required field %q (protocol https)", "tls")
		return
	}
	v.nonEmptyList(tp, len(l.TLS))
	for i := range l.TLS {
		// One mapping is recorded at tls itself, a list at tls[i].
		p := index(tp, i)
		if !v.present(p) {
			p = tp
		}
		if !v.bad[p] {
			v.tlsCert(&l.TLS[i], p)
		}
	}
}

func (v *validator) tlsCert(c *TLSCert, path string) {
	v.required(path, "cert", "key")
	certPath, keyPath := join(path, "cert"), join(path, "key")
	if !v.ok(certPath) || !v.ok(keyPath) {
		return
	}
	before := len(v.errs)
	c.Cert = v.file(certPath, c.Cert)
	c.Key = v.file(keyPath, c.Key)
	if len(v.errs) > before {
		return
	}
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		v.errf(path, "cannot load certificate and key: %v", err)
		return
	}
	c.Certificate = &pair
}

func (v *validator) route(r *Route, path string) {
	v.required(path, "pool")
	v.poolRef(join(path, "pool"), r.Pool)
	if p := join(path, "host"); v.ok(p) {
		r.Host = strings.ToLower(r.Host)
		v.check(p, checkRouteHost(r.Host))
	}
	for _, key := range []string{"path_prefix", "path"} {
		p := join(path, key)
		val := r.PathPrefix
		if key == "path" {
			val = r.Path
		}
		if v.ok(p) && !strings.HasPrefix(val, "/") {
			v.errf(p, "must start with \"/\", got %q", val)
		}
	}
	if v.present(join(path, "path_prefix")) && v.present(join(path, "path")) {
		v.errf(join(path, "path"), "not allowed together with path_prefix")
	}
	v.routeAccess(r, path)
	if cp := join(path, "cors"); r.CORS != nil && !v.bad[cp] {
		v.cors(r.CORS, cp)
	}
	if hp := join(path, "header"); r.Header != nil && !v.bad[hp] {
		v.required(hp, "name")
		if p := join(hp, "name"); v.ok(p) {
			v.check(p, checkToken(r.Header.Name))
		}
	}
}

// unreachableRoutes reports the first route after one that matches every
// request: it could never be used.
func (v *validator) unreachableRoutes(l *Listener, path string) {
	for i, r := range l.Routes {
		if i+1 == len(l.Routes) || v.bad[index(join(path, "routes"), i)] {
			continue
		}
		if r.Host == "" && r.PathPrefix == "" && r.Path == "" && r.Header == nil {
			v.errf(index(join(path, "routes"), i+1), "never used: routes[%d] before it matches every request", i)
			return
		}
	}
}
