package persist

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sealer seals and opens tokens; *keyring.Ring implements it. A token
// sealed for one purpose must not open for another, and must stop opening
// after its ttl.
type Sealer interface {
	SealTTL(purpose string, plaintext []byte, ttl time.Duration) (string, error)
	Open(purpose, token string) ([]byte, error)
}

// ErrBadCookie is returned (wrapped, together with the sealer's own error
// when there is one) by DecodeCookie for a cookie that does not open: forged,
// tampered, expired, sealed for another pool or by another key ring.
var ErrBadCookie = errors.New("persist: bad persistence cookie")

// cookieVersion is the first byte of a sealed cookie's plaintext, so the
// format can change without old cookies being misread.
const cookieVersion = 1

// CookiePurpose is the key ring purpose of pool's persistence cookie: the
// pool name is bound in, so a cookie from one pool does not open in another.
func CookiePurpose(pool string) string {
	return "fulcrum/persist/cookie/v1:" + pool
}

// EncodeCookie seals server for pool's persistence cookie, valid for ttl.
// The server name never appears in clear. The result is a valid cookie
// value (RFC 6265 cookie-octets).
func EncodeCookie(s Sealer, pool, server string, ttl time.Duration) (string, error) {
	if server == "" || len(server) > MaxServerLen {
		return "", fmt.Errorf("sealing persistence cookie: bad server name length %d", len(server))
	}
	pt := make([]byte, 0, 1+len(server))
	pt = append(append(pt, cookieVersion), server...)
	tok, err := s.SealTTL(CookiePurpose(pool), pt, ttl)
	if err != nil {
		return "", fmt.Errorf("sealing persistence cookie: %w", err)
	}
	for i := 0; i < len(tok); i++ {
		if !isCookieOctet(tok[i]) {
			return "", fmt.Errorf("sealing persistence cookie: token byte %q is not allowed in a cookie", tok[i])
		}
	}
	return tok, nil
}

// DecodeCookie opens a persistence cookie of pool and returns the server
// name sealed in it. Every failure wraps ErrBadCookie.
func DecodeCookie(s Sealer, pool, value string) (string, error) {
	if value == "" {
		return "", fmt.Errorf("opening persistence cookie: %w: empty", ErrBadCookie)
	}
	pt, err := s.Open(CookiePurpose(pool), value)
	if err != nil {
		return "", fmt.Errorf("opening persistence cookie: %w: %w", ErrBadCookie, err)
	}
	if len(pt) < 2 || len(pt) > 1+MaxServerLen || pt[0] != cookieVersion {
		return "", fmt.Errorf("opening persistence cookie: %w: unknown format", ErrBadCookie)
	}
	return string(pt[1:]), nil
}

// SetCookieValue builds the Set-Cookie header value of a persistence
// cookie: "NAME=VALUE; Path=/; Max-Age=SECONDS; HttpOnly; SameSite=Lax",
// with "; Secure" when the listener is https. maxAge is rounded up to whole
// seconds (at least 1).
func SetCookieValue(name, value string, maxAge time.Duration, secure bool) string {
	secs := int64((maxAge + time.Second - 1) / time.Second)
	var b strings.Builder
	b.Grow(len(name) + len(value) + 64)
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Path=/; Max-Age=")
	b.WriteString(strconv.FormatInt(max(secs, 1), 10))
	b.WriteString("; HttpOnly; SameSite=Lax")
	if secure {
		b.WriteString("; Secure")
	}
	return b.String()
}

// isCookieOctet reports whether c may appear in a cookie value unquoted
// (RFC 6265 section 4.1.1).
func isCookieOctet(c byte) bool {
	return c == 0x21 || c >= 0x23 && c <= 0x2B || c >= 0x2D && c <= 0x3A || c >= 0x3C && c <= 0x5B || c >= 0x5D && c <= 0x7E
}
