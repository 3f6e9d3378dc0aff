package persist

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSealer keeps plaintexts in memory and hands out opaque tokens; it
// binds the purpose and enforces the ttl like the key ring does.
type fakeSealer struct {
	now    func() time.Time
	sealed map[string]fakeToken
}

type fakeToken struct {
	purpose string
	pt      []byte
	expires time.Time
}

var errFakeOpen = errors.New("fake: cannot open")

func (f *fakeSealer) SealTTL(purpose string, pt []byte, ttl time.Duration) (string, error) {
	tok := "tok-" + strconv.Itoa(len(f.sealed))
	f.sealed[tok] = fakeToken{purpose, append([]byte(nil), pt...), f.now().Add(ttl)}
	return tok, nil
}

func (f *fakeSealer) Open(purpose, token string) ([]byte, error) {
	t, ok := f.sealed[token]
	if !ok || t.purpose != purpose || !f.now().Before(t.expires) {
		return nil, errFakeOpen
	}
	return t.pt, nil
}

var _ Sealer = (*fakeSealer)(nil)

func TestSealedCookie(t *testing.T) {
	c := newClock()
	s := &fakeSealer{now: c.Now, sealed: map[string]fakeToken{}}
	v, err := EncodeCookie(s, "app", "web1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "web1") {
		t.Errorf("cookie %q shows the server name", v)
	}
	if got, err := DecodeCookie(s, "app", v); err != nil || got != "web1" {
		t.Errorf("DecodeCookie = %q, %v; want web1", got, err)
	}
	for name, tc := range map[string]struct{ pool, value string }{
		"other pool": {"api", v},
		"forged":     {"app", "web1"},
		"empty":      {"app", ""},
	} {
		if _, err := DecodeCookie(s, tc.pool, tc.value); !errors.Is(err, ErrBadCookie) {
			t.Errorf("%s: got %v, want ErrBadCookie", name, err)
		}
	}
	if _, err := DecodeCookie(s, "api", v); !errors.Is(err, errFakeOpen) {
		t.Errorf("the sealer's error is not wrapped: %v", err)
	}
	c.Add(time.Minute)
	if _, err := DecodeCookie(s, "app", v); !errors.Is(err, ErrBadCookie) {
		t.Errorf("expired cookie: got %v, want ErrBadCookie", err)
	}
	// A token of the right purpose in an unknown format.
	tok, _ := s.SealTTL(CookiePurpose("app"), []byte("\x09web1"), time.Minute)
	if _, err := DecodeCookie(s, "app", tok); !errors.Is(err, ErrBadCookie) {
		t.Errorf("unknown format: got %v, want ErrBadCookie", err)
	}
	if _, err := EncodeCookie(s, "app", "", time.Minute); err == nil {
		t.Error("EncodeCookie accepted an empty server name")
	}
}

func TestSetCookieValue(t *testing.T) {
	tests := []struct {
		maxAge time.Duration
		secure bool
		want   string
	}{
		{30 * time.Minute, false, "FULCRUM=v; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax"},
		{1500 * time.Millisecond, true, "FULCRUM=v; Path=/; Max-Age=2; HttpOnly; SameSite=Lax; Secure"},
		{0, false, "FULCRUM=v; Path=/; Max-Age=1; HttpOnly; SameSite=Lax"},
	}
	for _, tt := range tests {
		if got := SetCookieValue("FULCRUM", "v", tt.maxAge, tt.secure); got != tt.want {
			t.Errorf("SetCookieValue(%v, %v) = %q, want %q", tt.maxAge, tt.secure, got, tt.want)
		}
	}
	// What fulcrum sets, fulcrum reads back.
	sc := SetCookieValue("FULCRUM", "tok", time.Minute, true)
	if v, act := ParseSetCookie([]byte(sc), "FULCRUM", time.Now()); act != CookieSet || string(v) != "tok" {
		t.Errorf("ParseSetCookie(%q) = %q, %v", sc, v, act)
	}
}
