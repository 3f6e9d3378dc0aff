package keyring

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goodSecret is a fixed secret that looks random (for files written by hand).
var goodSecret = sha256.Sum256([]byte("fulcrum keyring test"))

// keyJSON renders one key of a hand-written file.
func keyJSON(id string, secret []byte) map[string]any {
	return map[string]any{
		"id":          id,
		"secret":      base64.StdEncoding.EncodeToString(secret),
		"created":     t0,
		"active_from": t0,
	}
}

// writeFile writes a key file with the given mode and returns its path.
func writeFile(t *testing.T, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func ringJSON(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"version": 1, "keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSaveLoadRoundtrip(t *testing.T) {
	r, c := newRing(t)
	if _, err := r.Rotate(c.Now(), time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	l := mustLoad(t, path)
	got, want := l.Keys(), r.Keys()
	if len(got) != len(want) {
		t.Fatalf("loaded %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || !got[i].Created.Equal(want[i].Created) ||
			!got[i].ActiveFrom.Equal(want[i].ActiveFrom) || !got[i].Expires.Equal(want[i].Expires) {
			t.Errorf("key %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if l.Fingerprint() != r.Fingerprint() {
		t.Fatalf("fingerprint after load %s, want %s", l.Fingerprint(), r.Fingerprint())
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(`"version": 1`)) || bytes.Contains(data, []byte(`"expires": "0001`)) {
		t.Fatalf("file does not look as documented:\n%s", data)
	}
}

func TestSaveAtomic0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	r, _ := newRing(t)
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode %04o, want 0600", got)
	}
	if os.SameFile(before, after) {
		t.Fatal("Save rewrote the file in place; want a new file renamed over it")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after Save, want only keys.json (no temporary file left)", len(entries))
	}

	// A failed save leaves nothing behind and the old file intact.
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		if err := r.Save(filepath.Join(ro, "keys.json")); err == nil || !strings.Contains(err.Error(), "keys.json") {
			t.Fatalf("Save into a read-only directory: got %v, want an error naming the file", err)
		}
	}
	if err := r.Save(filepath.Join(dir, "missing", "keys.json")); err == nil {
		t.Fatal("Save into a missing directory: no error")
	}
	var zero Ring
	if err := zero.Save(path); err == nil {
		t.Fatal("saving an empty ring: no error")
	}
	mustLoad(t, path)
}

func TestLoadRefuses(t *testing.T) {
	good := keyJSON("0123456789abcdef", goodSecret[:])
	seq := make([]byte, 32)
	for i := range seq {
		seq[i] = byte(i + 1)
	}
	pattern := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 8)
	expired := keyJSON("0123456789abcdef", goodSecret[:])
	expired["expires"] = time.Now().Add(-time.Hour)
	expired["active_from"] = time.Now().Add(-2 * time.Hour)
	badExpiry := keyJSON("0123456789abcdef", goodSecret[:])
	badExpiry["expires"] = t0
	other := sha256.Sum256([]byte("another"))
	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"mode 0644", ringJSON(t, good), 0o644, "mode 0644 lets group or others read the keys; run: chmod 600"},
		{"mode 0640", ringJSON(t, good), 0o640, "mode 0640"},
		{"mode 0604", ringJSON(t, good), 0o604, "mode 0604"},
		{"zero key", ringJSON(t, keyJSON("0123456789abcdef", make([]byte, 32))), 0o600, "secret is all zero bytes"},
		{"repeated byte", ringJSON(t, keyJSON("0123456789abcdef", bytes.Repeat([]byte{1}, 32))), 0o600, "one byte repeated (0x01)"},
		{"counting", ringJSON(t, keyJSON("0123456789abcdef", seq)), 0o600, "a counting sequence"},
		{"changeme", ringJSON(t, keyJSON("0123456789abcdef", []byte(strings.Repeat("changeme", 4)))), 0o600, "printable text"},
		{"password", ringJSON(t, keyJSON("0123456789abcdef", []byte("correct horse battery staple 123"))), 0o600, "printable text"},
		{"pattern", ringJSON(t, keyJSON("0123456789abcdef", pattern)), 0o600, "a repeated pattern (4 distinct byte values)"},
		{"short secret", ringJSON(t, keyJSON("0123456789abcdef", goodSecret[:16])), 0o600, "secret must be 32 bytes"},
		{"bad id", ringJSON(t, keyJSON("XYZ", goodSecret[:])), 0o600, "id must be 16 lower-case hex digits"},
		{"upper-case id", ringJSON(t, keyJSON("0123456789ABCDEF", goodSecret[:])), 0o600, "id must be 16 lower-case hex digits"},
		{"duplicate id", ringJSON(t, good, keyJSON("0123456789abcdef", other[:])), 0o600, "keys[1] (id \"0123456789abcdef\"): same id as keys[0]"},
		{"duplicate secret", ringJSON(t, good, keyJSON("fedcba9876543210", goodSecret[:])), 0o600, "same secret as keys[0]"},
		{"expires before active", ringJSON(t, badExpiry), 0o600, `"expires" 2026-01-02T15:04:05Z is not after "active_from"`},
		{"all expired", ringJSON(t, expired), 0o600, "no usable key: every key has expired"},
		{"no keys", ringJSON(t), 0o600, "no keys; create a ring with: fulcrum keygen -o"},
		{"bad JSON", []byte("{\n  \"version\": 1,\n  \"keys\": [}\n"), 0o600, "line 3, column 12: malformed JSON"},
		{"wrong type", []byte(`{"version": "1", "keys": []}`), 0o600, "version must be a JSON int, not string"},
		{"unknown field", []byte(`{"version": 1, "keys": [], "secret": "x"}`), 0o600, `unknown field "secret"`},
		{"trailing data", append(ringJSON(t, good), []byte(" {}")...), 0o600, "unexpected data after the JSON object"},
		{"empty file", nil, 0o600, "empty file, not a key file"},
		{"missing version", []byte(`{"keys": []}`), 0o600, `missing "version"`},
		{"version 2", []byte(`{"version": 2, "keys": []}`), 0o600, "unsupported version 2 (this fulcrum reads version 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.data, tc.mode)
			r, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted it: %v", r)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got error %q, want one naming %s and saying %q", err, path, tc.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Load(directory): got %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing): got %v, want os.ErrNotExist", err)
	}
}

// TestLoadReportsEveryProblem: one run names every bad key.
func TestLoadReportsEveryProblem(t *testing.T) {
	path := writeFile(t, ringJSON(t,
		keyJSON("0123456789abcdef", make([]byte, 32)),
		keyJSON("bad", goodSecret[:]),
	), 0o600)
	_, err := Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"keys[0] (id \"0123456789abcdef\"): secret is all zero bytes", "keys[1] (id \"bad\"): id must be"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestLoadAcceptsHandWritten(t *testing.T) {
	k := keyJSON("0123456789abcdef", goodSecret[:])
	k["expires"] = time.Now().Add(time.Hour)
	path := writeFile(t, ringJSON(t, k, keyJSON("fedcba9876543210", nil)), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), `missing "secret"`) {
		t.Fatalf("got %v, want missing secret", err)
	}
	other := sha256.Sum256([]byte("another"))
	path = writeFile(t, ringJSON(t, k, keyJSON("fedcba9876543210", other[:])), 0o400)
	r := mustLoad(t, path)
	if a, err := r.Active(); err != nil || a.ID != "fedcba9876543210" {
		t.Fatalf("active key %+v, %v; want fedcba9876543210", a, err)
	}
}

// TestWeakSecretNeverRefusesRandom: the denylist rules never match real keys.
func TestWeakSecretNeverRefusesRandom(t *testing.T) {
	b := make([]byte, 32)
	for range 100000 {
		rand.Read(b)
		if why := weakSecret(b); why != "" {
			t.Fatalf("random secret %x refused: %s", b, why)
		}
	}
}
