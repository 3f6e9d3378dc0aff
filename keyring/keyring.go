// Package keyring is fulcrum's machine key ring: a small set of 256-bit keys,
// one active for sealing and the others kept for opening until they expire.
//
// Every node of a farm that loads the same key file seals and opens the same
// tokens, so a sticky cookie sealed by one balancer opens on any other, and
// rotating keys never invalidates live cookies. Seal and Open protect short
// values (a server name, a session id) with AES-256-GCM under a key derived
// for each purpose; Derive hands out a purpose-bound key for MACs; Fingerprint
// lets two nodes check they share a ring without revealing it.
//
// See README.md in this directory for the file format, the token format and
// the rotation procedure for a farm.
package keyring

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultActivateIn is how long after a rotation the new key starts
	// sealing, so every node of a farm has the new file before any node seals
	// with the new key.
	DefaultActivateIn = time.Hour

	// DefaultKeep is how long a key keeps opening tokens after it stops being
	// the newest key (Rotate with keepFor 0 uses it): 90 days.
	DefaultKeep = 90 * 24 * time.Hour

	secretSize = 32 // bytes of key material: AES-256 / HKDF-SHA256 input
	idSize     = 8  // bytes of a key id (16 hex digits in the file)

	// Domain-separation labels; changing any of them changes every token,
	// derived key or fingerprint, so they are versioned.
	sealInfo        = "fulcrum keyring v1 seal\x00"
	deriveInfo      = "fulcrum keyring v1 derive\x00"
	fingerprintSalt = "fulcrum keyring v1 fingerprint"

	// maxCachedPurposes bounds the per-key cache of derived AEADs, so a caller
	// passing unbounded purposes cannot grow memory; beyond it keys are derived
	// on every call.
	maxCachedPurposes = 64
)

// Key describes one key of a ring. It never holds the secret: printing or
// marshaling a Key reveals nothing.
type Key struct {
	ID         string    // 16 lower-case hex digits, random
	Created    time.Time // when the key was generated
	ActiveFrom time.Time // the key seals from this time until a newer key is active
	Expires    time.Time // the key opens tokens until this time; zero: not set yet (the newest key)
}

// expiredAt reports whether the key no longer opens tokens at t.
func (k Key) expiredAt(t time.Time) bool {
	return !k.Expires.IsZero() && !t.Before(k.Expires)
}

// entry is a key with its secret. Entries are immutable once published in a
// snapshot, except for the AEAD cache, which has its own lock.
type entry struct {
	Key
	id     [idSize]byte
	secret [secretSize]byte
	cache  *aeadCache
}

// aeadCache holds the AES-GCM instance derived for each purpose.
type aeadCache struct {
	mu sync.RWMutex
	m  map[string]cipher.AEAD
}

// snapshot is an immutable view of the ring's keys, sorted by ActiveFrom
// (then ID), oldest first.
type snapshot struct {
	keys []*entry
}

// Ring is a set of keys: one active for sealing, the others kept for opening
// until they expire. A Ring is safe for concurrent use; Rotate may run while
// other goroutines Seal and Open. Create one with Generate or Load; the zero
// Ring holds no key. A Ring must not be copied after first use.
//
// The key used for sealing is the newest key whose ActiveFrom has passed and
// which has not expired. Every key in the ring, including keys not yet active,
// opens the tokens it sealed until it expires.
type Ring struct {
	mu    sync.Mutex // serializes writers (Rotate); readers use snap
	snap  atomic.Pointer[snapshot]
	clock atomic.Pointer[func() time.Time]
}

// Generate returns a ring with one new key, active from now (rounded down to
// the second).
func Generate(now time.Time) (*Ring, error) {
	e, err := newEntry(now, now, nil)
	if err != nil {
		return nil, err
	}
	r := new(Ring)
	r.snap.Store(&snapshot{keys: []*entry{e}})
	return r, nil
}

// newEntry makes a key with a random id (not in taken) and a random secret.
func newEntry(created, activeFrom time.Time, taken []*entry) (*entry, error) {
	e := &entry{cache: new(aeadCache)}
	for {
		if _, err := rand.Read(e.id[:]); err != nil {
			return nil, fmt.Errorf("keyring: generating key id: %w", err)
		}
		if !slices.ContainsFunc(taken, func(o *entry) bool { return o.id == e.id }) {
			break
		}
	}
	for {
		if _, err := rand.Read(e.secret[:]); err != nil {
			return nil, fmt.Errorf("keyring: generating key: %w", err)
		}
		// Load refuses weak-looking keys; never write one, however unlikely.
		if weakSecret(e.secret[:]) == "" {
			break
		}
	}
	e.Key = Key{
		ID:         hex.EncodeToString(e.id[:]),
		Created:    created.Truncate(time.Second).UTC(),
		ActiveFrom: activeFrom.Truncate(time.Second).UTC(), // whole seconds read well in the file
	}
	return e, nil
}

// SetClock makes the ring read the time from now instead of time.Now when it
// picks the active key, checks expiry, and stamps SealTTL tokens. For tests
// and simulations; nil restores time.Now.
func (r *Ring) SetClock(now func() time.Time) {
	if now == nil {
		r.clock.Store(nil)
		return
	}
	r.clock.Store(&now)
}

func (r *Ring) now() time.Time {
	if c := r.clock.Load(); c != nil {
		return (*c)()
	}
	return time.Now()
}

func (r *Ring) load() *snapshot {
	if s := r.snap.Load(); s != nil {
		return s
	}
	return &snapshot{}
}

// Rotate adds a new key that becomes active at now+activateIn (rounded down to
// the second) and returns it.
// Every key that had no expiry yet (the newest keys, which were going to seal
// until replaced) now expires keepFor after the new key becomes active, so the
// tokens they sealed keep opening for that long. Keys that have expired by now
// are dropped. keepFor 0 means DefaultKeep; negative durations are refused.
//
// activateIn exists for farms: activation is by time, so every node that has
// the new file switches to the new key at the same moment, and a delay longer
// than it takes to copy the file to every node means no node seals with a key
// another node does not hold yet. A single node may use 0.
func (r *Ring) Rotate(now time.Time, activateIn, keepFor time.Duration) (Key, error) {
	if activateIn < 0 {
		return Key{}, fmt.Errorf("keyring: rotate: activate-in %v is negative", activateIn)
	}
	if keepFor < 0 {
		return Key{}, fmt.Errorf("keyring: rotate: keep %v is negative", keepFor)
	}
	if keepFor == 0 {
		keepFor = DefaultKeep
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.load().keys
	e, err := newEntry(now, now.Add(activateIn), old)
	if err != nil {
		return Key{}, err
	}
	expires := e.ActiveFrom.Add(keepFor)
	keys := make([]*entry, 0, len(old)+1)
	for _, o := range old {
		if o.Expires.IsZero() {
			c := *o // share the AEAD cache: same secret, same derived keys
			c.Expires = expires
			o = &c
		}
		if o.expiredAt(now) {
			continue
		}
		keys = append(keys, o)
	}
	keys = append(keys, e)
	sortEntries(keys)
	r.snap.Store(&snapshot{keys: keys})
	return e.Key, nil
}

func sortEntries(keys []*entry) {
	slices.SortStableFunc(keys, func(a, b *entry) int {
		if c := a.ActiveFrom.Compare(b.ActiveFrom); c != 0 {
			return c
		}
		return compareID(a.ID, b.ID)
	})
}

func compareID(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// active returns the key that seals at t: the newest key whose ActiveFrom has
// passed and which has not expired.
func (s *snapshot) active(t time.Time) *entry {
	for i := len(s.keys) - 1; i >= 0; i-- {
		e := s.keys[i]
		if !e.ActiveFrom.After(t) && !e.expiredAt(t) {
			return e
		}
	}
	return nil
}

// lookup returns the key with the given id, or nil. Rings hold a handful of
// keys, so a scan beats a map.
func (s *snapshot) lookup(id []byte) *entry {
	for _, e := range s.keys {
		if hmac.Equal(e.id[:], id) {
			return e
		}
	}
	return nil
}

// Active returns the key that seals now (by the ring's clock), or
// ErrNoActiveKey.
func (r *Ring) Active() (Key, error) {
	e := r.load().active(r.now())
	if e == nil {
		return Key{}, ErrNoActiveKey
	}
	return e.Key, nil
}

// Keys returns the ring's keys, oldest ActiveFrom first. The result holds no
// secret.
func (r *Ring) Keys() []Key {
	s := r.load()
	out := make([]Key, len(s.keys))
	for i, e := range s.keys {
		out[i] = e.Key
	}
	return out
}

// Fingerprint identifies the ring's key material without revealing it: 32 hex
// digits of HMAC-SHA256, under a fixed label, over every key id and secret in
// id order. Two nodes whose fingerprints match hold the same keys and open
// each other's tokens. Dates are not included: they do not change which tokens
// open.
func (r *Ring) Fingerprint() string {
	keys := slices.Clone(r.load().keys)
	slices.SortFunc(keys, func(a, b *entry) int { return compareID(a.ID, b.ID) })
	m := hmac.New(sha256.New, []byte(fingerprintSalt))
	for _, e := range keys {
		m.Write(e.id[:])
		m.Write(e.secret[:])
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Derive returns a 32-byte key for purpose, derived with HKDF-SHA256 from the
// active key. Use it where a token format does not fit, such as the MAC key
// for authenticating cluster replication. The result changes when a new key
// becomes active; all nodes of a farm sharing the file change at the same
// time. Derived keys are independent of the keys Seal uses, even for the same
// purpose string.
func (r *Ring) Derive(purpose string) ([]byte, error) {
	if purpose == "" {
		return nil, errEmptyPurpose
	}
	e := r.load().active(r.now())
	if e == nil {
		return nil, ErrNoActiveKey
	}
	k, err := hkdf.Key(sha256.New, e.secret[:], nil, deriveInfo+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: deriving key for %q: %w", purpose, err)
	}
	return k, nil
}

// String describes the ring without its secrets.
func (r *Ring) String() string {
	return fmt.Sprintf("keyring.Ring{keys: %d, fingerprint: %s}", len(r.load().keys), r.Fingerprint())
}
