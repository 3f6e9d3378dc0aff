package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Token layout, before base64url (no padding); see README.md.
//
//	version   1 byte   tokenVersion
//	flags     1 byte   flagExpiry, other bits zero
//	key id    8 bytes
//	nonce    12 bytes  random
//	expiry    8 bytes  Unix milliseconds, big-endian; only with flagExpiry
//	sealed    n+16     AES-256-GCM ciphertext and tag
//
// The additional data is the header (everything before sealed) followed by
// the purpose, so no header byte can change and no purpose can be swapped
// without failing authentication.
const (
	tokenVersion = 1
	flagExpiry   = 1 << 0

	nonceSize  = 12
	tagSize    = 16
	headerSize = 2 + idSize + nonceSize
	expirySize = 8
)

var tokenEncoding = base64.RawURLEncoding.Strict()

// Seal encrypts and authenticates plaintext for purpose with the active key
// and returns a token safe in URLs and cookies (base64url, no padding). The
// token opens with Open and the same purpose on any ring that holds the key,
// until the key expires. The purpose, such as "persist-cookie" or
// "state-at-rest", must not be empty; a token never opens under another
// purpose. Seal returns ErrNoActiveKey if no key is active.
func (r *Ring) Seal(purpose string, plaintext []byte) (string, error) {
	return r.seal(purpose, plaintext, r.now(), 0)
}

// SealTTL is Seal for a token that also expires by itself ttl from now (by
// the ring's clock, to the millisecond, rounded up); Open then returns
// ErrTokenExpired. The expiry is in the token in clear, and authenticated.
func (r *Ring) SealTTL(purpose string, plaintext []byte, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("keyring: seal: ttl %v is not positive", ttl)
	}
	return r.seal(purpose, plaintext, r.now(), ttl)
}

func (r *Ring) seal(purpose string, plaintext []byte, now time.Time, ttl time.Duration) (string, error) {
	if purpose == "" {
		return "", errEmptyPurpose
	}
	e := r.load().active(now)
	if e == nil {
		return "", ErrNoActiveKey
	}
	aead, err := e.aead(purpose)
	if err != nil {
		return "", err
	}
	n := headerSize
	if ttl > 0 {
		n += expirySize
	}
	buf := make([]byte, n, n+len(plaintext)+tagSize)
	buf[0] = tokenVersion
	copy(buf[2:], e.id[:])
	nonce := buf[2+idSize : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("keyring: seal: reading nonce: %w", err)
	}
	if ttl > 0 {
		buf[1] |= flagExpiry
		binary.BigEndian.PutUint64(buf[headerSize:], uint64(ceilMilli(now.Add(ttl))))
	}
	out := aead.Seal(buf, nonce, plaintext, additionalData(buf, purpose))
	return tokenEncoding.EncodeToString(out), nil
}

// ceilMilli is t in Unix milliseconds, rounded up so a token never expires
// before its ttl.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// Open checks and decrypts a token made by Seal or SealTTL for purpose. Every
// failure wraps ErrInvalid; the specific error is one of ErrMalformed,
// ErrUnknownKey, ErrTampered (which includes a wrong purpose), ErrKeyExpired
// or ErrTokenExpired. Expiry is reported only for tokens that authenticate,
// so an attacker learns nothing from the difference. Open never returns
// plaintext with an error.
func (r *Ring) Open(purpose string, token string) ([]byte, error) {
	if purpose == "" {
		return nil, errEmptyPurpose
	}
	raw, err := decodeToken(token)
	if err != nil {
		return nil, err
	}
	hdr := headerSize
	if raw[1]&flagExpiry != 0 {
		hdr += expirySize
	}
	if len(raw) < hdr+tagSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header and tag", ErrMalformed, len(raw))
	}
	id := raw[2 : 2+idSize]
	e := r.load().lookup(id)
	if e == nil {
		return nil, fmt.Errorf("%w: id %s", ErrUnknownKey, hex.EncodeToString(id))
	}
	aead, err := e.aead(purpose)
	if err != nil {
		return nil, err
	}
	nonce := raw[2+idSize : headerSize]
	plaintext, err := aead.Open(nil, nonce, raw[hdr:], additionalData(raw[:hdr], purpose))
	if err != nil {
		return nil, ErrTampered
	}
	now := r.now()
	if e.expiredAt(now) {
		clear(plaintext)
		return nil, fmt.Errorf("%w: id %s expired at %s", ErrKeyExpired, e.ID, e.Expires.Format(time.RFC3339))
	}
	if hdr > headerSize {
		exp := time.UnixMilli(int64(binary.BigEndian.Uint64(raw[headerSize:hdr])))
		if !now.Before(exp) {
			clear(plaintext)
			return nil, fmt.Errorf("%w at %s", ErrTokenExpired, exp.UTC().Format(time.RFC3339Nano))
		}
	}
	if plaintext == nil {
		plaintext = []byte{}
	}
	return plaintext, nil
}

// decodeToken decodes base64url strictly: one spelling per token (no padding,
// no line breaks, no stray low bits), a known version and known flags.
func decodeToken(token string) ([]byte, error) {
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: byte %d is not base64url", ErrMalformed, i)
		}
	}
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case len(raw) < headerSize+tagSize:
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header and tag", ErrMalformed, len(raw))
	case raw[0] != tokenVersion:
		return nil, fmt.Errorf("%w: version %d (this fulcrum reads %d)", ErrMalformed, raw[0], tokenVersion)
	case raw[1]&^flagExpiry != 0:
		return nil, fmt.Errorf("%w: unknown flags 0x%02x", ErrMalformed, raw[1])
	}
	return raw, nil
}

// additionalData is header || purpose, in a fresh slice.
func additionalData(header []byte, purpose string) []byte {
	ad := make([]byte, 0, len(header)+len(purpose))
	return append(append(ad, header...), purpose...)
}

// aead returns the AES-256-GCM instance for purpose under this key: the key
// is HKDF-SHA256(secret, info = sealInfo || purpose). Instances are cached
// per purpose (up to maxCachedPurposes); cipher.AEAD from crypto/cipher keeps
// no per-call state and is safe for concurrent use.
func (e *entry) aead(purpose string) (cipher.AEAD, error) {
	e.cache.mu.RLock()
	a, ok := e.cache.m[purpose]
	e.cache.mu.RUnlock()
	if ok {
		return a, nil
	}
	k, err := hkdf.Key(sha256.New, e.secret[:], nil, sealInfo+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: deriving key for %q: %w", purpose, err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	if e.cache.m == nil {
		e.cache.m = make(map[string]cipher.AEAD)
	}
	if len(e.cache.m) < maxCachedPurposes {
		e.cache.m[purpose] = a
	}
	return a, nil
}
