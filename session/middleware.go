package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/fulcrumlb/fulcrum/keyring"
)

// CookiePurpose is the key ring purpose the session cookie is sealed for,
// so a token sealed for anything else (a sticky cookie, /v1/protect) never
// opens as a session id.
const CookiePurpose = "fulcrum/session/cookie"

// Defaults of Options.
const (
	DefaultCookieName   = "fulcrum_session"
	DefaultLockWait     = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// Sealer seals and opens the cookie's value; *keyring.Ring is one. Every
// application node must hold the same keys (the farm's key ring file).
type Sealer interface {
	Seal(purpose string, plaintext []byte) (string, error)
	Open(purpose, token string) ([]byte, error)
}

var _ Sealer = (*keyring.Ring)(nil)

// Options configure Middleware.
type Options struct {
	// Client reaches the state service (required).
	Client *Client
	// Sealer seals the session id into the cookie (required): a cookie
	// that does not open (tampered, forged, sealed with unknown keys) is
	// ignored and the request gets a new session.
	Sealer Sealer
	// CookieName is the session cookie's name (default fulcrum_session).
	CookieName string
	// CookiePath (default "/") and CookieDomain (default none: host-only)
	// scope the cookie.
	CookiePath   string
	CookieDomain string
	// Secure marks the cookie Secure: set it whenever clients reach the
	// application over HTTPS, including through a TLS-terminating balancer.
	Secure bool
	// SameSite of the cookie (default Lax). The cookie is always HttpOnly
	// and has no Max-Age: the state service's sliding timeout ends sessions.
	SameSite http.SameSite
	// LockWait is how long a read-write request queues for the session's
	// exclusive lock before it fails with ErrLocked (default 10s; the
	// service caps it at its lock_timeout).
	LockWait time.Duration
	// WriteTimeout bounds the write-back or unlock after the handler
	// (default 10s). It runs even when the client has gone away, so the
	// lock is never left to the service's lock_timeout.
	WriteTimeout time.Duration
	// ReadOnly, when set, marks requests whose handler only reads the
	// session (besides handlers wrapped in ReadOnly): they take no lock.
	ReadOnly func(*http.Request) bool
	// ErrorHandler answers a request whose session cannot be loaded
	// (default: 503 with Retry-After: 1, and the error logged).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives failures to write a session back after the response
	// (default slog.Default()).
	Logger *slog.Logger
}

// manager is the middleware's configuration, shared by every handler it wraps.
type manager struct{ opts Options }

// Middleware returns net/http middleware that gives each request its
// session (From): read-write handlers hold the session's exclusive lock
// from before the handler runs until its changes are written back (only if
// the session changed; otherwise the lock is just released), so concurrent
// requests of one client never lose an update; handlers wrapped in
// ReadOnly, or matched by Options.ReadOnly, read a snapshot, take no lock
// and never wait behind a writer. A handler that panics releases the lock
// without writing, and the panic goes on.
//
// A request without a valid cookie gets a new session and the cookie, unless
// its handler is read-only (it sees an empty session; nothing is created).
// It panics when Client or Sealer is missing.
func Middleware(opts Options) func(http.Handler) http.Handler {
	if opts.Client == nil || opts.Sealer == nil {
		panic("session: Options.Client and Options.Sealer are required")
	}
	if opts.CookieName == "" {
		opts.CookieName = DefaultCookieName
	}
	if opts.CookiePath == "" {
		opts.CookiePath = "/"
	}
	if opts.SameSite == 0 {
		opts.SameSite = http.SameSiteLaxMode
	}
	if opts.LockWait <= 0 {
		opts.LockWait = DefaultLockWait
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &manager{opts: opts}
	if m.opts.ErrorHandler == nil {
		m.opts.ErrorHandler = m.defaultError
	}
	return func(next http.Handler) http.Handler {
		_, ro := next.(readOnlyHandler)
		return &handler{m: m, next: next, readOnly: ro}
	}
}

// ReadOnly marks h as a handler that only reads the session: it gets a
// snapshot, takes no lock and cannot change the session (ErrReadOnly).
// Wrapped directly by Middleware it costs nothing extra; further in (behind
// a mux the middleware wraps) it releases the lock the middleware took
// before h runs.
func ReadOnly(h http.Handler) http.Handler { return readOnlyHandler{h} }

type readOnlyHandler struct{ http.Handler }

func (h readOnlyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s := From(r.Context()); s != nil {
		s.m.downgrade(r.Context(), s)
	}
	h.Handler.ServeHTTP(w, r)
}

type handler struct {
	m        *manager
	next     http.Handler
	readOnly bool
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ro := h.readOnly || h.m.opts.ReadOnly != nil && h.m.opts.ReadOnly(r)
	s, err := h.m.load(r.Context(), w, r, ro)
	if err != nil {
		h.m.opts.ErrorHandler(w, r, err)
		return
	}
	done := false
	defer func() {
		if !done { // the handler panicked: release without writing; the panic goes on
			h.m.release(r.Context(), s)
		}
	}()
	h.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	done = true
	if err := h.m.commit(r.Context(), s); err != nil {
		h.m.opts.Logger.Warn("session: writing the session back failed", "err", err, "path", r.URL.Path)
	}
}

// cookieID is the session id the request's cookie names, or "" when it has
// none or it does not open.
func (m *manager) cookieID(r *http.Request) string {
	c, err := r.Cookie(m.opts.CookieName)
	if err != nil {
		return ""
	}
	id, err := m.opts.Sealer.Open(CookiePurpose, c.Value)
	if err != nil {
		return ""
	}
	return string(id)
}

// load reads or creates the request's session.
func (m *manager) load(ctx context.Context, w http.ResponseWriter, r *http.Request, ro bool) (*Session, error) {
	id := m.cookieID(r)
	if ro {
		if id == "" {
			return m.newSession(w, &Snapshot{}, true)
		}
		snap, err := m.opts.Client.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return m.newSession(w, &Snapshot{}, true)
		}
		if err != nil {
			return nil, err
		}
		return m.newSession(w, snap, true)
	}
	if id != "" {
		// Not the request's context: a lock granted just as the client went
		// away would be left to the service's lock_timeout.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.LockWait+m.opts.WriteTimeout)
		snap, err := m.opts.Client.Lock(lctx, id, m.opts.LockWait)
		cancel()
		if err == nil {
			s, err := m.newSession(w, snap, false)
			if err != nil {
				m.release(ctx, &Session{id: id, lockID: snap.LockID})
			}
			return s, err
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	snap, err := m.opts.Client.Create(ctx, nil)
	if err != nil {
		return nil, err
	}
	s, err := m.newSession(w, snap, false)
	if err != nil {
		return nil, err
	}
	s.isNew, s.private = true, true
	return s, m.setCookie(w, snap.ID)
}

func (m *manager) newSession(w http.ResponseWriter, snap *Snapshot, ro bool) (*Session, error) {
	values, err := decodeValues(snap.Data)
	if err != nil {
		return nil, err
	}
	orig := snap.Data
	if len(values) == 0 {
		orig = []byte("{}") // an empty session that stays empty is not written
	}
	return &Session{m: m, w: w, id: snap.ID, readOnly: ro, lockID: snap.LockID, orig: orig, values: values}, nil
}

// commit writes the session back if it changed, else releases its lock.
func (m *manager) commit(ctx context.Context, s *Session) error {
	s.mu.Lock()
	ro, id, lockID := s.readOnly, s.id, s.lockID
	s.mu.Unlock()
	if ro {
		return nil
	}
	data, changed, err := s.encoded()
	if err != nil || !changed {
		m.release(ctx, s)
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.WriteTimeout)
	defer cancel()
	// Without a lock the id is private to this request (created or renewed
	// here): a plain write.
	_, err = m.opts.Client.Put(ctx, id, data, PutOptions{LockID: lockID})
	return err
}

// release gives the lock back without writing, if the session holds one.
func (m *manager) release(ctx context.Context, s *Session) {
	s.mu.Lock()
	id, lockID := s.id, s.lockID
	s.lockID = ""
	s.mu.Unlock()
	if lockID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.WriteTimeout)
	defer cancel()
	if err := m.opts.Client.Unlock(ctx, id, lockID); err != nil && !errors.Is(err, ErrLockLost) {
		m.opts.Logger.Warn("session: releasing the lock failed", "err", err)
	}
}

// downgrade makes a read-write session read-only for a ReadOnly handler
// behind the middleware: the lock is released and the values are those read.
func (m *manager) downgrade(ctx context.Context, s *Session) {
	s.mu.Lock()
	s.readOnly = true
	s.mu.Unlock()
	m.release(ctx, s)
}

// setCookie issues the cookie naming id, replacing one set earlier in this
// response.
func (m *manager) setCookie(w http.ResponseWriter, id string) error {
	tok, err := m.opts.Sealer.Seal(CookiePurpose, []byte(id))
	if err != nil {
		return err
	}
	h := w.Header()
	prefix := m.opts.CookieName + "="
	kept := h.Values("Set-Cookie")[:0:0]
	for _, v := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(v, prefix) {
			kept = append(kept, v)
		}
	}
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
	http.SetCookie(w, &http.Cookie{
		Name: m.opts.CookieName, Value: tok, Path: m.opts.CookiePath, Domain: m.opts.CookieDomain,
		Secure: m.opts.Secure, HttpOnly: true, SameSite: m.opts.SameSite,
	})
	return nil
}

// defaultError answers 503: the session could not be loaded (the lock was
// not granted in time, the service is unreachable); trying again is safe.
func (m *manager) defaultError(w http.ResponseWriter, r *http.Request, err error) {
	m.opts.Logger.Warn("session: loading the session failed", "err", err, "path", r.URL.Path)
	w.Header().Set("Retry-After", "1")
	msg := "session state unavailable, try again"
	if errors.Is(err, ErrLocked) {
		msg = "session busy, try again"
	}
	http.Error(w, msg, http.StatusServiceUnavailable)
}
