package httpproxy

import (
	"sync/atomic"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// PersistMode is how a pool keeps clients on their server.
type PersistMode uint8

const (
	PersistNone      PersistMode = iota
	PersistSourceIP              // table keyed by the client's address prefix
	PersistCookie                // a sealed cookie fulcrum inserts names the server
	PersistAppCookie             // table keyed by the application's session cookie (and URL id)
	PersistURL                   // table keyed by a session id in the URL
)

// Persistence is a pool's stickiness as the forwarder applies it.
type Persistence struct {
	Mode      PersistMode
	Pool      string         // the pool's name: binds sealed cookies to it
	Table     *persist.Table // source_ip, app_cookie, url
	Cookie    string         // cookie mode: the cookie fulcrum sets
	AppCookie string         // app_cookie mode: the application's cookie
	URL       persist.URLMode
	HasURL    bool
	Mask      persist.SourceMask
	Timeout   time.Duration  // cookie validity
	Fail      bool           // on_down: fail (503) instead of redispatch
	Sealer    persist.Sealer // cookie mode
	Secure    bool           // cookie mode: the listener is https

	byName map[string]int
	sealed []atomic.Pointer[sealedCookie] // cookie mode: by server index
}

// sealedCookie is a Set-Cookie line fulcrum handed out for one server,
// reused until fresh: sealing (AES-GCM, a random nonce, allocations) on
// every response to a client without the cookie cost more than the rest of
// the request. The token names only the server, so every client sent to
// that server may get the same one; reusing it for a short while moves its
// sealed expiry by at most that while.
type sealedCookie struct {
	line  []byte // "Set-Cookie: NAME=TOKEN; ...\r\n"
	fresh int64  // unix nanoseconds until which it is handed out again
}

// cookieReuse is how long a sealed cookie is reused: short against the
// cookie's validity (Timeout/64 when that is shorter), so a key rotation or
// an expiry takes effect within it.
func (p *Persistence) cookieReuse() time.Duration {
	return min(time.Second, p.Timeout/64)
}

// Index maps server names to their index in the pool; call once after
// setting the fields, before use.
func (p *Persistence) Index(servers []*pool.Server) {
	p.byName = make(map[string]int, len(servers))
	for i, s := range servers {
		p.byName[s.Name()] = i
	}
	p.sealed = make([]atomic.Pointer[sealedCookie], len(servers))
}

// cookieLine returns the Set-Cookie line naming server i (name), sealing a
// new token when the last one is no longer fresh.
func (p *Persistence) cookieLine(i int, name string) ([]byte, error) {
	now := time.Now().UnixNano()
	if i < len(p.sealed) {
		if c := p.sealed[i].Load(); c != nil && now < c.fresh {
			return c.line, nil
		}
	}
	v, err := persist.EncodeCookie(p.Sealer, p.Pool, name, p.Timeout)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, 128)
	line = append(line, "Set-Cookie: "...)
	line = append(line, persist.SetCookieValue(p.Cookie, v, p.Timeout, p.Secure)...)
	line = append(line, "\r\n"...)
	if i < len(p.sealed) {
		p.sealed[i].Store(&sealedCookie{line: line, fresh: now + int64(p.cookieReuse())})
	}
	return line, nil
}

// pin is what persistence found for one request.
type pin struct {
	key      []byte // table key (aliases the request or cc.keyBuf)
	server   int    // pinned server index, -1 when none
	valid    bool   // the request carried a pin naming a live server
	stale    bool   // the request's pin names a server that cannot take it
	cookieOK bool   // cookie mode: the request's cookie names the chosen server
}

// lookupPin finds the server a request is pinned to.
func (cc *clientConn) lookupPin(t *Target) { cc.findPin(t, false) }

// findPin looks up the pin; dry looks without touching the entry (traces).
func (cc *clientConn) findPin(t *Target, dry bool) {
	p := t.Persist
	cc.pin = pin{server: -1}
	if p == nil || p.Mode == PersistNone {
		return
	}
	var name string
	var ok bool
	switch p.Mode {
	case PersistSourceIP:
		cc.keyBuf = p.Mask.AppendKey(cc.keyBuf[:0], cc.id.client)
		cc.pin.key = cc.keyBuf
		name, ok = lookup(p.Table, cc.pin.key, dry)
	case PersistCookie:
		v, found := persist.CookieValue(cc.req.header("cookie"), p.Cookie)
		if found {
			s, err := persist.DecodeCookie(p.Sealer, p.Pool, string(v))
			name, ok = s, err == nil
		}
	case PersistAppCookie, PersistURL:
		var v []byte
		var found bool
		if p.Mode == PersistAppCookie {
			v, found = persist.CookieValue(cc.req.header("cookie"), p.AppCookie)
		}
		if !found && p.HasURL {
			v, found = p.URL.SessionID(cc.req.target)
		}
		if found && len(v) > 0 {
			cc.keyBuf = append(cc.keyBuf[:0], v...)
			cc.pin.key = cc.keyBuf
			name, ok = lookup(p.Table, cc.pin.key, dry)
		}
	}
	if !ok {
		return
	}
	i, known := p.byName[name]
	if !known {
		cc.pin.stale = true
		return
	}
	if !t.Pool.Servers()[i].Reachable() {
		cc.pin.stale = true
		return
	}
	cc.pin.server, cc.pin.valid = i, true
}

func lookup(t *persist.Table, key []byte, dry bool) (string, bool) {
	if dry {
		e, ok := t.Peek(string(key))
		return e.Server, ok
	}
	return t.Lookup(key)
}

// learnPin records where the request went, after a response from server i:
// the table entry for the request's key, ids the application handed out in
// Set-Cookie or Location, and the cookie fulcrum must set. It appends any
// Set-Cookie field of fulcrum's own to cc.extra.
func (cc *clientConn) learnPin(t *Target, i int, resp *response) {
	p := t.Persist
	if p == nil || p.Mode == PersistNone {
		return
	}
	srv := t.Pool.Servers()[i]
	switch p.Mode {
	case PersistSourceIP:
		if !cc.pin.valid || cc.pin.server != i {
			p.Table.Pin(cc.pin.key, srv.Name())
		}
	case PersistCookie:
		if cc.pin.valid && cc.pin.server == i {
			return
		}
		line, err := p.cookieLine(i, srv.Name())
		if err != nil {
			cc.h.log.Warn("sealing persistence cookie", "pool", p.Pool, "err", err)
			return
		}
		cc.extra = append(cc.extra, line...)
	case PersistAppCookie, PersistURL:
		// An id the client already carried, seen for the first time or
		// moved to another server, is pinned where it went.
		if len(cc.pin.key) > 0 && (!cc.pin.valid || cc.pin.server != i) {
			p.Table.Pin(cc.pin.key, srv.Name())
		}
		now := time.Now()
		for k := range resp.fields {
			f := &resp.fields[k]
			switch {
			case p.Mode == PersistAppCookie && equalFold(f.name, "set-cookie"):
				v, act := persist.ParseSetCookie(f.value, p.AppCookie, now)
				switch act {
				case persist.CookieSet:
					p.Table.Pin(v, srv.Name())
				case persist.CookieDelete:
					if len(cc.pin.key) > 0 {
						p.Table.Delete(string(cc.pin.key))
					}
				}
			case p.HasURL && equalFold(f.name, "location"):
				if v, ok := p.URL.SessionID(f.value); ok && len(v) > 0 {
					p.Table.Pin(v, srv.Name())
				}
			}
		}
	}
}
