package persist_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/keyring"
)

var _ persist.Sealer = (*keyring.Ring)(nil)

// TestSealedCookieKeyring runs the sealed cookie through the real key ring.
func TestSealedCookieKeyring(t *testing.T) {
	now := time.Now()
	ring, err := keyring.Generate(now)
	if err != nil {
		t.Fatal(err)
	}
	ring.SetClock(func() time.Time { return now })
	v, err := persist.EncodeCookie(ring, "app", "web1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "web1") {
		t.Errorf("cookie %q shows the server name", v)
	}
	sc := persist.SetCookieValue("FULCRUM", v, time.Minute, true)
	got, act := persist.ParseSetCookie([]byte(sc), "FULCRUM", now)
	if act != persist.CookieSet || string(got) != v {
		t.Fatalf("the sealed value does not survive a Set-Cookie round trip: %q", sc)
	}
	cv, _ := persist.CookieValue([]byte("a=1; FULCRUM="+v), "FULCRUM")
	if srv, err := persist.DecodeCookie(ring, "app", string(cv)); err != nil || srv != "web1" {
		t.Errorf("DecodeCookie = %q, %v; want web1", srv, err)
	}
	if _, err := persist.DecodeCookie(ring, "api", v); !errors.Is(err, persist.ErrBadCookie) {
		t.Errorf("other pool: got %v, want ErrBadCookie", err)
	}
	tampered := []byte(v)
	tampered[len(tampered)/2] ^= 1
	if _, err := persist.DecodeCookie(ring, "app", string(tampered)); !errors.Is(err, persist.ErrBadCookie) {
		t.Errorf("tampered: got %v, want ErrBadCookie", err)
	}
	other, _ := keyring.Generate(now)
	if _, err := persist.DecodeCookie(other, "app", v); !errors.Is(err, persist.ErrBadCookie) {
		t.Errorf("other ring: got %v, want ErrBadCookie", err)
	}
	now = now.Add(time.Minute + time.Millisecond)
	if _, err := persist.DecodeCookie(ring, "app", v); !errors.Is(err, persist.ErrBadCookie) {
		t.Errorf("expired: got %v, want ErrBadCookie", err)
	}
}
