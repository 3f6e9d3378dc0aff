package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// bearer checks "Authorization: Bearer <token>". It keeps only the token's
// SHA-256 and compares digests in constant time, so neither the token's bytes
// nor its length leak through timing.
type bearer struct {
	sum [sha256.Size]byte
}

func newBearer(token string) *bearer {
	return &bearer{sum: sha256.Sum256([]byte(token))}
}

// allows reports whether r carries the token. The scheme is case-insensitive
// (RFC 9110 section 11.1).
func (b *bearer) allows(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return b.matches(tok)
}

// matches reports whether tok (surrounding white space ignored) is the
// token, in constant time.
func (b *bearer) matches(tok string) bool {
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], b.sum[:]) == 1
}
