package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Browser sessions: the login form trades the token for a cookie.
const (
	// sessionCookie is the cookie's name.
	sessionCookie = "fulcrum_admin"
	// sessionLife is how long a login lasts.
	sessionLife = 12 * time.Hour
	// maxSessions bounds the live logins kept; the one closest to expiry
	// is forgotten first.
	maxSessions = 1024
)

// sessions issues and checks the dashboard's login cookies. A cookie is
// base64url(id | expiry) "." base64url(HMAC-SHA256(key, id | expiry)) where
// id is 16 random bytes and key is derived from the token and a secret
// drawn at start: the cookie is not the token, it cannot be forged without
// both, and it dies with the process or a logout (the id must also be in
// the live set). Comparisons are constant-time.
type sessions struct {
	key [sha256.Size]byte
	now func() time.Time

	mu   sync.Mutex
	live map[[16]byte]time.Time // id -> expiry
}

func newSessions(tokenSum [sha256.Size]byte, now func() time.Time) *sessions {
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails (Go 1.24+)
	m := hmac.New(sha256.New, secret[:])
	m.Write([]byte("fulcrum admin session v1\x00"))
	m.Write(tokenSum[:])
	s := &sessions{now: now, live: map[[16]byte]time.Time{}}
	copy(s.key[:], m.Sum(nil))
	return s
}

// issue starts a session and returns its cookie value.
func (s *sessions) issue() (value string, expires time.Time) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	expires = s.now().Add(sessionLife).Truncate(time.Second)
	payload := make([]byte, 0, 24)
	payload = append(payload, id[:]...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(expires.Unix()))

	s.mu.Lock()
	s.pruneLocked()
	if len(s.live) >= maxSessions {
		var oldest [16]byte
		var at time.Time
		for k, exp := range s.live {
			if at.IsZero() || exp.Before(at) {
				oldest, at = k, exp
			}
		}
		delete(s.live, oldest)
	}
	s.live[id] = expires
	s.mu.Unlock()

	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac(payload)), expires
}

func (s *sessions) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key[:])
	m.Write(payload)
	return m.Sum(nil)
}

// check returns the session id of a valid cookie value.
func (s *sessions) check(value string) ([16]byte, bool) {
	var id [16]byte
	p, t, ok := strings.Cut(value, ".")
	if !ok {
		return id, false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	tag, err2 := enc.DecodeString(t)
	if err1 != nil || err2 != nil || len(payload) != 24 {
		return id, false
	}
	if !hmac.Equal(tag, s.mac(payload)) {
		return id, false
	}
	copy(id[:], payload[:16])
	expires := time.Unix(int64(binary.BigEndian.Uint64(payload[16:])), 0)
	if !s.now().Before(expires) {
		return id, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, live := s.live[id]
	return id, live
}

// allows reports whether r carries a valid session cookie.
func (s *sessions) allows(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	_, ok := s.check(c.Value)
	return ok
}

// end forgets the session of r's cookie, if any.
func (s *sessions) end(r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return
	}
	if id, ok := s.check(c.Value); ok {
		s.mu.Lock()
		delete(s.live, id)
		s.mu.Unlock()
	}
}

func (s *sessions) pruneLocked() {
	now := s.now()
	for id, exp := range s.live {
		if !now.Before(exp) {
			delete(s.live, id)
		}
	}
}

// sessionCookieFor builds the Set-Cookie for value; an empty value clears it.
func sessionCookieFor(r *http.Request, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
		c.MaxAge = int(sessionLife / time.Second)
	}
	return c
}
