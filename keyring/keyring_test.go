package keyring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// clock is an injectable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newRing generates a ring at t0 with a clock the test controls.
func newRing(t *testing.T) (*Ring, *clock) {
	t.Helper()
	r, err := Generate(t0)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: t0}
	r.SetClock(c.Now)
	return r, c
}

func mustSeal(t *testing.T, r *Ring, purpose string, plaintext []byte) string {
	t.Helper()
	tok, err := r.Seal(purpose, plaintext)
	if err != nil {
		t.Fatalf("Seal(%q): %v", purpose, err)
	}
	return tok
}

// tokenKeyID returns the key id a token names.
func tokenKeyID(t *testing.T, tok string) string {
	t.Helper()
	raw, err := tokenEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(raw[2 : 2+idSize])
}

// wantErr checks that err is target and, like every token error, ErrInvalid.
func wantErr(t *testing.T, what string, got []byte, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%s: error %v does not wrap ErrInvalid", what, err)
	}
	if got != nil {
		t.Fatalf("%s: got plaintext %q with an error", what, got)
	}
}

var cookieSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestSealOpenRoundtrip(t *testing.T) {
	r, _ := newRing(t)
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 16<<10)
	for _, tc := range []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"nil", nil},
		{"server name", []byte("app/srv-a")},
		{"binary 64KiB", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := mustSeal(t, r, "persist-cookie", tc.plaintext)
			if !cookieSafe.MatchString(tok) {
				t.Fatalf("token %q is not base64url without padding", tok)
			}
			got, err := r.Open("persist-cookie", tok)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got == nil || !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open: got %d bytes %q, want %d bytes", len(got), got[:min(len(got), 16)], len(tc.plaintext))
			}
		})
	}
	a, b := mustSeal(t, r, "p", []byte("x")), mustSeal(t, r, "p", []byte("x"))
	if a == b {
		t.Fatalf("two seals of the same plaintext gave the same token %q; nonces must be random", a)
	}
	if got, want := len(a), ((headerSize+1+tagSize)*8+5)/6; got != want {
		t.Errorf("token for 1 byte is %d characters, want %d", got, want)
	}
}

func TestPurposeSeparation(t *testing.T) {
	r, _ := newRing(t)
	tok := mustSeal(t, r, "persist-cookie", []byte("srv-a"))
	for _, p := range []string{"state-at-rest", "persist-cookiE", "persist-cookie\x00", "persist-cooki"} {
		got, err := r.Open(p, tok)
		wantErr(t, fmt.Sprintf("Open(%q)", p), got, err, ErrTampered)
	}
	if _, err := r.Seal("", []byte("x")); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("Seal with empty purpose: got %v, want a usage error", err)
	}
	if _, err := r.Open("", tok); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with empty purpose: got %v, want a usage error", err)
	}
}

// TestTamperEveryByte flips every bit of every byte of the raw token, and
// replaces every character of the encoded token, for plain and TTL tokens.
func TestTamperEveryByte(t *testing.T) {
	r, _ := newRing(t)
	plain := mustSeal(t, r, "p", []byte("srv-a"))
	ttl, err := r.SealTTL("p", []byte("srv-a"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"plain": plain, "ttl": ttl} {
		t.Run(name, func(t *testing.T) {
			raw, _ := tokenEncoding.DecodeString(tok)
			for i := range raw {
				for bit := range 8 {
					m := bytes.Clone(raw)
					m[i] ^= 1 << bit
					got, err := r.Open("p", tokenEncoding.EncodeToString(m))
					if err == nil || !errors.Is(err, ErrInvalid) || got != nil {
						t.Fatalf("byte %d bit %d flipped: got %q, %v; want nil and an ErrInvalid", i, bit, got, err)
					}
				}
			}
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. \n"
			for i := range len(tok) {
				for _, c := range []byte(alphabet) {
					if c == tok[i] {
						continue
					}
					m := tok[:i] + string(c) + tok[i+1:]
					got, err := r.Open("p", m)
					if err == nil || !errors.Is(err, ErrInvalid) || got != nil {
						t.Fatalf("char %d set to %q: got %q, %v; want nil and an ErrInvalid", i, c, got, err)
					}
				}
			}
			got, err := r.Open("p", tok+"\n")
			wantErr(t, "token with a line break", got, err, ErrMalformed)
		})
	}
}

func TestTruncation(t *testing.T) {
	r, _ := newRing(t)
	tok := mustSeal(t, r, "p", []byte("srv-a"))
	for n := range len(tok) {
		got, err := r.Open("p", tok[:n])
		if err == nil || !errors.Is(err, ErrInvalid) || got != nil {
			t.Fatalf("first %d of %d characters: got %q, %v", n, len(tok), got, err)
		}
	}
	got, err := r.Open("p", "")
	wantErr(t, "empty token", got, err, ErrMalformed)
	got, err = r.Open("p", tok[:20])
	wantErr(t, "20 characters", got, err, ErrMalformed)
	for _, extra := range []string{"A", "AA", "AAA", "AAAA"} {
		got, err := r.Open("p", tok+extra)
		if err == nil || !errors.Is(err, ErrInvalid) || got != nil {
			t.Fatalf("token + %q: got %q, %v", extra, got, err)
		}
	}
}

func TestMalformedHeader(t *testing.T) {
	r, _ := newRing(t)
	raw, _ := tokenEncoding.DecodeString(mustSeal(t, r, "p", []byte("twenty bytes of text")))
	for _, tc := range []struct {
		name string
		edit func([]byte)
		want error
	}{
		{"version 2", func(b []byte) { b[0] = 2 }, ErrMalformed},
		{"version 0", func(b []byte) { b[0] = 0 }, ErrMalformed},
		{"unknown flag", func(b []byte) { b[1] |= 0x80 }, ErrMalformed},
		{"expiry flag set on a plain token", func(b []byte) { b[1] |= flagExpiry }, ErrTampered},
		{"other key id", func(b []byte) { b[2] ^= 0xff }, ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := bytes.Clone(raw)
			tc.edit(m)
			got, err := r.Open("p", tokenEncoding.EncodeToString(m))
			wantErr(t, tc.name, got, err, tc.want)
		})
	}
}

func TestUnknownKey(t *testing.T) {
	a, _ := newRing(t)
	b, _ := newRing(t)
	got, err := b.Open("p", mustSeal(t, a, "p", []byte("x")))
	wantErr(t, "token from another ring", got, err, ErrUnknownKey)
	if !strings.Contains(err.Error(), a.Keys()[0].ID) {
		t.Errorf("error %q does not name the key id %s", err, a.Keys()[0].ID)
	}
}

func TestKeyExpired(t *testing.T) {
	r, c := newRing(t)
	tok := mustSeal(t, r, "p", []byte("x"))
	if _, err := r.Rotate(c.Now(), 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour - time.Second)
	if _, err := r.Open("p", tok); err != nil {
		t.Fatalf("one second before the old key expires: %v", err)
	}
	c.Advance(time.Second)
	got, err := r.Open("p", tok)
	wantErr(t, "old key expired", got, err, ErrKeyExpired)

	// A tampered token under an expired key is tampered, not expired.
	raw, _ := tokenEncoding.DecodeString(tok)
	raw[len(raw)-1] ^= 1
	got, err = r.Open("p", tokenEncoding.EncodeToString(raw))
	wantErr(t, "tampered token of an expired key", got, err, ErrTampered)

	// The next rotation drops the expired key.
	if _, err := r.Rotate(c.Now(), 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Keys()); n != 2 {
		t.Fatalf("after the second rotation the ring has %d keys, want 2 (expired key dropped)", n)
	}
	got, err = r.Open("p", tok)
	wantErr(t, "key dropped", got, err, ErrUnknownKey)
}

func TestTokenTTL(t *testing.T) {
	r, c := newRing(t)
	tok, err := r.SealTTL("p", []byte("x"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute - time.Millisecond)
	if got, err := r.Open("p", tok); err != nil || string(got) != "x" {
		t.Fatalf("1ms before expiry: got %q, %v; want \"x\"", got, err)
	}
	c.Advance(time.Millisecond)
	got, err := r.Open("p", tok)
	wantErr(t, "at expiry", got, err, ErrTokenExpired)

	// A sub-millisecond ttl is rounded up, never down to "already expired".
	tok, err = r.SealTTL("p", []byte("x"), time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open("p", tok); err != nil {
		t.Fatalf("1ns ttl opened at once: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := r.SealTTL("p", []byte("x"), ttl); err == nil {
			t.Errorf("SealTTL with ttl %v: no error", ttl)
		}
	}
}

func TestRotation(t *testing.T) {
	r, c := newRing(t)
	k1, err := r.Active()
	if err != nil {
		t.Fatal(err)
	}
	old := mustSeal(t, r, "p", []byte("old"))
	k2, err := r.Rotate(c.Now(), time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Hour); !k2.ActiveFrom.Equal(want) || !k2.Expires.IsZero() {
		t.Fatalf("new key: active from %v expires %v; want %v and no expiry", k2.ActiveFrom, k2.Expires, want)
	}
	if got := r.Keys()[0]; got.ID != k1.ID || !got.Expires.Equal(k2.ActiveFrom.Add(DefaultKeep)) {
		t.Fatalf("old key after rotation: %+v; want expiry %v", got, k2.ActiveFrom.Add(DefaultKeep))
	}

	// Not yet active: still sealing with k1.
	c.Advance(time.Hour - time.Second)
	if id := tokenKeyID(t, mustSeal(t, r, "p", []byte("x"))); id != k1.ID {
		t.Fatalf("before activation sealed with %s, want the old key %s", id, k1.ID)
	}
	c.Advance(time.Second)
	newTok := mustSeal(t, r, "p", []byte("new"))
	if id := tokenKeyID(t, newTok); id != k2.ID {
		t.Fatalf("after activation sealed with %s, want the new key %s", id, k2.ID)
	}
	if a, _ := r.Active(); a.ID != k2.ID {
		t.Fatalf("Active() = %s, want %s", a.ID, k2.ID)
	}
	for tok, want := range map[string]string{old: "old", newTok: "new"} {
		if got, err := r.Open("p", tok); err != nil || string(got) != want {
			t.Fatalf("after rotation: got %q, %v; want %q", got, err, want)
		}
	}
	c.Advance(DefaultKeep - time.Second)
	if _, err := r.Open("p", old); err != nil {
		t.Fatalf("old token just before keep ends: %v", err)
	}
	c.Advance(time.Second)
	if _, err := r.Open("p", old); !errors.Is(err, ErrKeyExpired) {
		t.Fatalf("old token after keep: got %v, want ErrKeyExpired", err)
	}

	for _, d := range [][2]time.Duration{{-time.Second, 0}, {0, -time.Second}} {
		if _, err := r.Rotate(c.Now(), d[0], d[1]); err == nil {
			t.Errorf("Rotate(activateIn %v, keep %v): no error", d[0], d[1])
		}
	}
}

// TestPendingKeyOpens: a node whose clock runs ahead seals with the new key a
// moment before this node activates it; this node still opens the token.
func TestPendingKeyOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	r, c := newRing(t)
	k2, err := r.Rotate(c.Now(), time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	ahead, behind := mustLoad(t, path), mustLoad(t, path)
	ahead.SetClock(func() time.Time { return t0.Add(time.Hour) })
	behind.SetClock(func() time.Time { return t0.Add(time.Hour - time.Second) })
	tok := mustSeal(t, ahead, "p", []byte("x"))
	if id := tokenKeyID(t, tok); id != k2.ID {
		t.Fatalf("sealed with %s, want %s", id, k2.ID)
	}
	if _, err := behind.Open("p", tok); err != nil {
		t.Fatalf("pending key does not open: %v", err)
	}
}

func mustLoad(t *testing.T, path string) *Ring {
	t.Helper()
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFarm: rings loaded from the same file open each other's tokens.
func TestFarm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	r, c := newRing(t)
	if _, err := r.Rotate(c.Now(), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	lb1, lb2 := mustLoad(t, path), mustLoad(t, path)
	lb1.SetClock(c.Now)
	lb2.SetClock(c.Now)
	for _, pair := range [][2]*Ring{{lb1, lb2}, {lb2, lb1}, {r, lb1}, {lb2, r}} {
		tok := mustSeal(t, pair[0], "persist-cookie", []byte("srv-b"))
		if got, err := pair[1].Open("persist-cookie", tok); err != nil || string(got) != "srv-b" {
			t.Fatalf("cross open: got %q, %v", got, err)
		}
	}
	if lb1.Fingerprint() != lb2.Fingerprint() || lb1.Fingerprint() != r.Fingerprint() {
		t.Fatalf("fingerprints differ: %s %s %s", r.Fingerprint(), lb1.Fingerprint(), lb2.Fingerprint())
	}
	if len(lb1.Fingerprint()) != 32 {
		t.Fatalf("fingerprint %q is not 32 hex digits", lb1.Fingerprint())
	}
	other, _ := newRing(t)
	if other.Fingerprint() == lb1.Fingerprint() {
		t.Fatal("another ring has the same fingerprint")
	}
	before := lb1.Fingerprint()
	if _, err := lb1.Rotate(t0, time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if lb1.Fingerprint() == before {
		t.Fatal("rotation did not change the fingerprint")
	}
	d1, err := lb2.Derive("cluster-replication")
	if err != nil {
		t.Fatal(err)
	}
	lb3 := mustLoad(t, path)
	lb3.SetClock(c.Now)
	d2, err := lb3.Derive("cluster-replication")
	if err != nil {
		t.Fatal(err)
	}
	if len(d1) != 32 || !bytes.Equal(d1, d2) {
		t.Fatalf("Derive: %x and %x; want the same 32 bytes on every node", d1, d2)
	}
}

func TestDerive(t *testing.T) {
	r, c := newRing(t)
	a, _ := r.Derive("a")
	b, _ := r.Derive("b")
	if bytes.Equal(a, b) {
		t.Fatal("Derive gives the same key for two purposes")
	}
	if _, err := r.Derive(""); err == nil {
		t.Fatal("Derive(\"\"): no error")
	}
	if _, err := r.Rotate(c.Now(), time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if a2, _ := r.Derive("a"); !bytes.Equal(a, a2) {
		t.Fatal("Derive changed before the new key became active")
	}
	c.Advance(time.Hour)
	if a3, _ := r.Derive("a"); bytes.Equal(a, a3) {
		t.Fatal("Derive did not change when the new key became active")
	}
}

func TestNoActiveKey(t *testing.T) {
	var zero Ring
	if _, err := zero.Seal("p", nil); !errors.Is(err, ErrNoActiveKey) || errors.Is(err, ErrInvalid) {
		t.Fatalf("zero Ring Seal: got %v, want ErrNoActiveKey", err)
	}
	if _, err := zero.Derive("p"); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("zero Ring Derive: got %v, want ErrNoActiveKey", err)
	}
	if _, err := zero.Active(); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("zero Ring Active: got %v, want ErrNoActiveKey", err)
	}
	got, err := zero.Open("p", strings.Repeat("A", 60))
	if err == nil || got != nil {
		t.Fatalf("zero Ring Open: got %q, %v", got, err)
	}
	r, c := newRing(t)
	c.Advance(-time.Second) // before the only key is active
	if _, err := r.Seal("p", nil); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("Seal before activation: got %v, want ErrNoActiveKey", err)
	}
}

func TestErrorsWrapInvalid(t *testing.T) {
	for _, err := range []error{ErrMalformed, ErrTampered, ErrUnknownKey, ErrKeyExpired, ErrTokenExpired, ErrWrongPurpose} {
		if !errors.Is(err, ErrInvalid) || err == ErrInvalid {
			t.Errorf("%v does not wrap ErrInvalid", err)
		}
		if errors.Is(ErrInvalid, err) {
			t.Errorf("ErrInvalid is %v", err)
		}
	}
}

// TestNoSecretsPrinted: formatting a Ring or its keys never shows a secret.
func TestNoSecretsPrinted(t *testing.T) {
	r, _ := newRing(t)
	s := r.load().keys[0].secret
	var v any = r // %d on a *Ring is what vet warns about, and what must not leak
	out := fmt.Sprintf("%v %+v %#v %s %x %d %v %+v", r, r, r, r, r, v, r.Keys(), r.Keys()[0])
	for _, enc := range []string{hex.EncodeToString(s[:]), fmt.Sprint(s[:]), fmt.Sprintf("%d", s[:4])} {
		if strings.Contains(out, strings.Trim(enc, "[]")) {
			t.Fatalf("formatted ring shows its secret: %s", out)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	r, c := newRing(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			purpose := fmt.Sprintf("p%d", g%2)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := r.Seal(purpose, []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := r.Open(purpose, tok); err != nil {
					t.Error(err)
					return
				}
				_ = r.Fingerprint()
			}
		}()
	}
	for range 20 {
		c.Advance(time.Minute)
		if _, err := r.Rotate(c.Now(), 0, time.Hour); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}
