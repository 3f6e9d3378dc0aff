package config

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// This file holds the persistence keys: each pool's persistence mapping and
// the top-level keyring that mode cookie seals its cookie with.

// Persistence defaults. The README of internal/persist lists the same values.
const (
	defaultPersistMode   = "none"
	defaultPersistCookie = "FULCRUM"
	defaultSourceMask    = 32
	defaultSourceMaskV6  = 128
	defaultPersistIdle   = 30 * time.Minute
	defaultOnDown        = "redispatch"
	defaultMaxEntries    = 100000
)

// Persistence keeps each client on the server that holds its session.
type Persistence struct {
	// Mode is none, source_ip (table keyed by the client's address prefix),
	// cookie (fulcrum inserts a sealed cookie naming the server),
	// app_cookie (table keyed by the application's own session cookie) or
	// url (table keyed by a session id in the URL) (key mode, default none).
	Mode string
	// Cookie is the name of the cookie fulcrum inserts in mode cookie, an
	// HTTP token (key cookie, default FULCRUM; mode cookie only).
	Cookie string
	// AppCookie is the application's session cookie learned from
	// Set-Cookie, e.g. ASP.NET_SessionId or JSESSIONID (key app_cookie,
	// required with mode app_cookie and only allowed there).
	AppCookie string
	// URL is where a session id sits in the URL: asp (the ASP.NET
	// cookieless segment /(S(id))/), jsessionid (the ;jsessionid=id path
	// parameter) or query:NAME (query parameter NAME) (key url, required
	// with mode url; also allowed with mode app_cookie, where an id seen in
	// the URL or in the cookie reaches the same server).
	URL string
	// SourceMask is the IPv4 prefix length clients are grouped by in mode
	// source_ip: 24 puts 10.1.2.0/24 on one server (key source_mask,
	// 0..32, default 32; mode source_ip only).
	SourceMask int
	// SourceMaskV6 is the IPv6 prefix length in mode source_ip (key
	// source_mask_v6, 0..128, default 128; mode source_ip only). IPv4-mapped
	// IPv6 clients use SourceMask.
	SourceMaskV6 int
	// Timeout is the idle expiry of table entries; in mode cookie, the
	// cookie's validity (Max-Age and the sealed expiry) (key timeout,
	// duration, default 30m).
	Timeout time.Duration
	// OnDown is what happens to a client pinned to a server that is down:
	// redispatch (pick another usable server and pin the client to it) or
	// fail (answer 503) (key on_down, default redispatch).
	OnDown string
	// MaxEntries bounds the table; the least recently used entry is evicted
	// first (key max_entries, default 100000, at least 1; table modes
	// source_ip, app_cookie and url only).
	MaxEntries int
}

// Table reports whether the mode keeps a table (source_ip, app_cookie, url).
func (p Persistence) Table() bool {
	return p.Mode == "source_ip" || p.Mode == "app_cookie" || p.Mode == "url"
}

func (d *decoder) persistence(v *yaml.Node, path string, p *Persistence) {
	d.fields(v, path, map[string]setter{
		"mode":           d.str(&p.Mode),
		"cookie":         d.str(&p.Cookie),
		"app_cookie":     d.str(&p.AppCookie),
		"url":            d.str(&p.URL),
		"source_mask":    d.integer(&p.SourceMask),
		"source_mask_v6": d.integer(&p.SourceMaskV6),
		"timeout":        d.duration(&p.Timeout),
		"on_down":        d.str(&p.OnDown),
		"max_entries":    d.integer(&p.MaxEntries),
	})
}

func (df defaulter) persistence(p *Persistence, path string) {
	setDefault(df, join(path, "mode"), &p.Mode, defaultPersistMode)
	setDefault(df, join(path, "timeout"), &p.Timeout, defaultPersistIdle)
	setDefault(df, join(path, "on_down"), &p.OnDown, defaultOnDown)
	if p.Mode == "cookie" {
		setDefault(df, join(path, "cookie"), &p.Cookie, defaultPersistCookie)
	}
	if p.Mode == "source_ip" {
		setDefault(df, join(path, "source_mask"), &p.SourceMask, defaultSourceMask)
		setDefault(df, join(path, "source_mask_v6"), &p.SourceMaskV6, defaultSourceMaskV6)
	}
	if p.Table() {
		setDefault(df, join(path, "max_entries"), &p.MaxEntries, defaultMaxEntries)
	}
}

// keyringFile checks the top-level keyring: a file that must exist,
// resolved against the configuration's directory like admin.token_file.
func (v *validator) keyringFile() {
	if v.ok("keyring") {
		v.c.Keyring = v.file("keyring", v.c.Keyring)
	}
	if v.c.DataDir == "" {
		v.c.DataDir = "fulcrum-data"
	}
	if !filepath.IsAbs(v.c.DataDir) {
		v.c.DataDir = filepath.Join(v.dir, v.c.DataDir)
	}
}

func (v *validator) persistence(p *Persistence, path string) {
	mp := join(path, "mode")
	v.oneOf(mp, p.Mode, "none", "source_ip", "cookie", "app_cookie", "url")
	if v.bad[mp] {
		return
	}
	v.onlyWith(path, p.Mode == "cookie", "with mode cookie", "cookie")
	v.onlyWith(path, p.Mode == "app_cookie", "with mode app_cookie", "app_cookie")
	v.onlyWith(path, p.Mode == "url" || p.Mode == "app_cookie", "with mode url or app_cookie", "url")
	v.onlyWith(path, p.Mode == "source_ip", "with mode source_ip", "source_mask", "source_mask_v6")
	v.onlyWith(path, p.Table(), "with mode source_ip, app_cookie or url (a cookie needs no table)", "max_entries")
	v.onlyWith(path, p.Mode != "none", "when mode is not none", "timeout", "on_down")
	switch {
	case p.Mode == "app_cookie" && !v.present(join(path, "app_cookie")):
		v.errf(path, "missing required field %q (mode app_cookie)", "app_cookie")
	case p.Mode == "url" && !v.present(join(path, "url")):
		v.errf(path, "missing required field %q (mode url)", "url")
	case p.Mode == "cookie" && !v.present("keyring"):
		v.errf(mp, "mode cookie requires the top-level keyring (a key ring file made by fulcrum keygen) to seal its cookie")
	}
	for _, key := range []string{"cookie", "app_cookie"} {
		if kp := join(path, key); v.ok(kp) {
			val := p.Cookie
			if key == "app_cookie" {
				val = p.AppCookie
			}
			v.check(kp, checkCookieName(val))
		}
	}
	if up := join(path, "url"); v.ok(up) {
		v.check(up, checkURLMode(p.URL))
	}
	if sp := join(path, "source_mask"); v.ok(sp) && p.SourceMask > 32 && p.SourceMask <= 128 {
		v.errf(sp, "must be 0..32 (an IPv4 prefix length), got %d; give the IPv6 prefix length as source_mask_v6", p.SourceMask)
	} else {
		v.between(sp, p.SourceMask, 0, 32)
	}
	v.between(join(path, "source_mask_v6"), p.SourceMaskV6, 0, 128)
	v.positive(join(path, "timeout"), p.Timeout)
	v.oneOf(join(path, "on_down"), p.OnDown, "redispatch", "fail")
	v.atLeast(join(path, "max_entries"), p.MaxEntries, 1)
}

// checkURLMode checks a persistence url: asp, jsessionid or query:NAME where
// NAME is a query parameter name without delimiters.
func checkURLMode(s string) string {
	switch {
	case s == "asp" || s == "jsessionid":
		return ""
	case strings.HasPrefix(s, "query:"):
		name := strings.TrimPrefix(s, "query:")
		if name == "" || strings.ContainsAny(name, "&=?#;/ \t") {
			return "query:NAME needs a parameter name without &, =, ?, #, ;, / or spaces, got " + strconv.Quote(s)
		}
		return ""
	}
	return "must be asp, jsessionid or query:NAME; got " + strconv.Quote(s)
}

// checkCookieName checks a cookie name: an HTTP token (RFC 6265 4.1.1).
func checkCookieName(s string) string {
	if checkToken(s) != "" {
		return "must be a cookie name (letters, digits and !#$%&'*+-.^_`|~), got " + strconv.Quote(s)
	}
	return ""
}
