package keyring

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzPlaintexts are the only values the fuzz ring ever seals.
var fuzzPlaintexts = [][]byte{{}, []byte("app/srv-a"), bytes.Repeat([]byte("x"), 100)}

// FuzzOpen: Open never panics, every failure is an ErrInvalid with no
// plaintext, and the only tokens that open are ones the ring sealed, spelled
// exactly as Seal spelled them. The ring is loaded from a fixed file so every
// fuzz worker holds the same keys as the process that made the seeds.
func FuzzOpen(f *testing.F) {
	secret := sha256.Sum256([]byte("fulcrum keyring fuzz"))
	path := filepath.Join(f.TempDir(), "keys.json")
	data := []byte(`{"version": 1, "keys": [{"id": "00112233aabbccdd", "secret": "` +
		base64.StdEncoding.EncodeToString(secret[:]) + `", "created": "2026-01-02T15:04:05Z", "active_from": "2026-01-02T15:04:05Z"}]}`)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		f.Fatal(err)
	}
	r, err := Load(path)
	if err != nil {
		f.Fatal(err)
	}
	r.SetClock(func() time.Time { return t0.Add(time.Minute) })
	for _, p := range fuzzPlaintexts {
		tok, err := r.Seal("p", p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("p", tok)
		if tok, err = r.SealTTL("p", p, time.Hour); err != nil {
			f.Fatal(err)
		}
		f.Add("p", tok)
		f.Add("q", tok)
	}
	f.Add("p", "")
	f.Add("p", "AQE")
	f.Fuzz(func(t *testing.T, purpose, token string) {
		got, err := r.Open(purpose, token)
		if err != nil {
			if got != nil {
				t.Fatalf("plaintext %q returned with error %v", got, err)
			}
			if purpose != "" && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if purpose != "p" {
			t.Fatalf("token %q opened under purpose %q, never sealed for it", token, purpose)
		}
		known := false
		for _, p := range fuzzPlaintexts {
			known = known || bytes.Equal(got, p)
		}
		if !known {
			t.Fatalf("token %q opened to %q, which was never sealed", token, got)
		}
		raw, err := tokenEncoding.DecodeString(token)
		if err != nil || tokenEncoding.EncodeToString(raw) != token {
			t.Fatalf("token %q opened but is not in canonical spelling", token)
		}
	})
}
