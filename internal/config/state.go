package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// State configures the session state service (key state; nil when the file
// has no state: section). A file with one may leave out listeners and pools:
// a dedicated state host runs only the service.
type State struct {
	// Listen is the service's address, host:port (key listen, default
	// 127.0.0.1:9100; unique across every listen address).
	Listen string
	// TokenFile holds the bearer token clients must send (key token_file;
	// required unless Listen is a loopback address; the file must exist). A
	// relative path is resolved against the configuration file's directory.
	TokenFile string
	// Store is where sessions are kept (key store).
	Store StateStore
	// Timeout is the sliding expiry: each access pushes it back (key
	// timeout, default 20m, at most max_lifetime).
	Timeout time.Duration
	// MaxLifetime is the absolute expiry from creation (key max_lifetime,
	// default 24h).
	MaxLifetime time.Duration
	// LockTimeout is the age at which an exclusive lock is broken (key
	// lock_timeout, default 90s).
	LockTimeout time.Duration
	// MaxSize is the largest session in bytes (key max_size, default 1MiB,
	// positive).
	MaxSize int64
	// Encrypt seals session data with the key ring before it is stored (key
	// encrypt, default false).
	Encrypt bool
}

// StateStore picks and locates the state store.
type StateStore struct {
	// Type is memory, bolt, redis or postgres (key type, default bolt).
	Type string
	// Path is the bolt database file (key path, bolt only, default
	// fulcrum-state.db). A relative path is resolved against the
	// configuration file's directory.
	Path string
	// URL locates Redis (redis://host:port/db, rediss://...) or PostgreSQL
	// (postgres://user@host:port/db) (key url, required for redis and
	// postgres, not allowed otherwise).
	URL string
}

const (
	defaultStateListen      = "127.0.0.1:9100"
	defaultStateStore       = "bolt"
	defaultStatePath        = "fulcrum-state.db"
	defaultStateTimeout     = 20 * time.Minute
	defaultStateMaxLifetime = 24 * time.Hour
	defaultStateLockTimeout = 90 * time.Second
	defaultStateMaxSize     = 1 << 20
)

func (d *decoder) state(v *yaml.Node, path string) *State {
	s := &State{}
	d.fields(v, path, map[string]setter{
		"listen":     d.str(&s.Listen),
		"token_file": d.str(&s.TokenFile),
		"store": func(v *yaml.Node, path string) {
			d.fields(v, path, map[string]setter{
				"type": d.str(&s.Store.Type),
				"path": d.str(&s.Store.Path),
				"url":  d.str(&s.Store.URL),
			})
		},
		"timeout":      d.duration(&s.Timeout),
		"max_lifetime": d.duration(&s.MaxLifetime),
		"lock_timeout": d.duration(&s.LockTimeout),
		"max_size":     d.size(&s.MaxSize),
		"encrypt":      d.boolean(&s.Encrypt),
	})
	return s
}

func (df defaulter) state(s *State) {
	if s == nil {
		return
	}
	setDefault(df, "state.listen", &s.Listen, defaultStateListen)
	setDefault(df, "state.store.type", &s.Store.Type, defaultStateStore)
	if s.Store.Type == "bolt" {
		setDefault(df, "state.store.path", &s.Store.Path, defaultStatePath)
	}
	setDefault(df, "state.timeout", &s.Timeout, defaultStateTimeout)
	setDefault(df, "state.max_lifetime", &s.MaxLifetime, defaultStateMaxLifetime)
	setDefault(df, "state.lock_timeout", &s.LockTimeout, defaultStateLockTimeout)
	setDefault(df, "state.max_size", &s.MaxSize, defaultStateMaxSize)
}

func (v *validator) state(s *State) {
	if s == nil || v.bad["state"] {
		return
	}
	if p := "state.listen"; v.ok(p) {
		v.check(p, checkAddress(s.Listen, true))
		v.stateListenUnique(s.Listen)
	}
	switch {
	case v.ok("state.token_file"):
		s.TokenFile = v.file("state.token_file", s.TokenFile)
	case !v.present("state.token_file") && v.ok("state.listen") && !isLoopback(s.Listen):
		v.errf("state", "missing required field %q (listen %s is not a loopback address)", "token_file", s.Listen)
	}
	v.oneOf("state.store.type", s.Store.Type, "memory", "bolt", "redis", "postgres")
	if v.ok("state.store.type") || !v.present("state.store.type") {
		v.stateStore(&s.Store)
	}
	v.positive("state.timeout", s.Timeout)
	v.positive("state.max_lifetime", s.MaxLifetime)
	v.positive("state.lock_timeout", s.LockTimeout)
	if p := "state.max_size"; v.ok(p) && s.MaxSize <= 0 {
		v.errf(p, "must be positive, got %d", s.MaxSize)
	}
	if (v.ok("state.timeout") || v.ok("state.max_lifetime")) && s.Timeout > s.MaxLifetime {
		v.errf("state.timeout", "must not exceed max_lifetime (%s), got %s", s.MaxLifetime, s.Timeout)
	}
}

func (v *validator) stateStore(st *StateStore) {
	const path = "state.store"
	switch st.Type {
	case "bolt":
		if p := join(path, "path"); v.ok(p) && st.Path == "" {
			v.errf(p, "must not be empty")
		}
		if st.Path != "" && !filepath.IsAbs(st.Path) {
			st.Path = filepath.Join(v.dir, st.Path)
		}
	case "redis", "postgres":
		if !v.present(join(path, "url")) {
			v.errf(path, "missing required field %q (type %s)", "url", st.Type)
		}
	}
	v.onlyWith(path, st.Type == "bolt", "with type bolt", "path")
	v.onlyWith(path, st.Type == "redis" || st.Type == "postgres", "with type redis or postgres", "url")
	if p := join(path, "url"); v.ok(p) {
		schemes := map[string][]string{"redis": {"redis://", "rediss://"}, "postgres": {"postgres://", "postgresql://"}}[st.Type]
		ok := false
		for _, s := range schemes {
			ok = ok || strings.HasPrefix(st.URL, s)
		}
		if !ok && len(schemes) > 0 {
			v.errf(p, "must start with %s, got %q", strings.Join(schemes, " or "), st.URL)
		}
	}
}

// stateListenUnique reports state.listen when admin.listen or a listener
// already uses the address.
func (v *validator) stateListenUnique(addr string) {
	key := normalAddress(addr)
	if v.ok("admin.listen") && normalAddress(v.c.Admin.Listen) == key {
		v.errf("state.listen", "address %s is already used by admin.listen", addr)
		return
	}
	for i, l := range v.c.Listeners {
		if p := join(index("listeners", i), "listen"); v.ok(p) && normalAddress(l.Listen) == key {
			v.errf("state.listen", "address %s is already used by %s", addr, p)
			return
		}
	}
}

// isLoopback reports whether a listen address only accepts local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
