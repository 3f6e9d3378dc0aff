package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fulcrumlb/fulcrum/keyring"
)

// keygen runs `fulcrum keygen args...` in-process.
func keygen(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"keygen"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeygenNewRotateShow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	code, out, errs := keygen(t, "-o", path)
	if code != 0 || !strings.Contains(out, "wrote "+path) {
		t.Fatalf("keygen -o: code %d out %q err %q", code, out, errs)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	r, err := keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Keys()[0].ID
	tok, err := r.Seal("p", []byte("srv-a"))
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs = keygen(t, "-o", path)
	if code != 1 || !strings.Contains(errs, "exists; use --force") {
		t.Fatalf("keygen -o over an existing file: code %d err %q, want 1 and a refusal", code, errs)
	}
	if r2, _ := keyring.Load(path); r2.Fingerprint() != r.Fingerprint() {
		t.Fatal("refused keygen -o changed the file")
	}

	code, out, errs = keygen(t, "--rotate", path, "--activate-in", "30m", "--keep", "720h")
	if code != 0 || !strings.Contains(out, "rotated "+path) || !strings.Contains(out, "copy "+path+" to every node before") {
		t.Fatalf("keygen --rotate: code %d out %q err %q", code, out, errs)
	}
	r, err = keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := r.Keys()
	if len(keys) != 2 || keys[0].ID != first || keys[0].Expires.Sub(keys[1].ActiveFrom) != 720*60*60e9 {
		t.Fatalf("after rotation: %+v", keys)
	}
	if got, err := r.Open("p", tok); err != nil || string(got) != "srv-a" {
		t.Fatalf("token from before the rotation: %q, %v", got, err)
	}

	code, out, errs = keygen(t, "--show", path)
	if code != 0 {
		t.Fatalf("keygen --show: code %d err %q", code, errs)
	}
	for _, want := range []string{"fingerprint " + r.Fingerprint(), first, keys[1].ID, "active", "pending", "EXPIRES"} {
		if !strings.Contains(out, want) {
			t.Errorf("keygen --show output lacks %q:\n%s", want, out)
		}
	}
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), `"secret": "`); ok {
			if secret := strings.TrimRight(s, `",`); strings.Contains(out, secret) || strings.Contains(out, secret[:12]) {
				t.Fatalf("keygen --show printed a secret:\n%s", out)
			}
		}
	}

	code, out, errs = keygen(t, "-o", path, "--force")
	if code != 0 {
		t.Fatalf("keygen -o --force: code %d err %q", code, errs)
	}
	if r2, _ := keyring.Load(path); r2 == nil || len(r2.Keys()) != 1 || r2.Fingerprint() == r.Fingerprint() {
		t.Fatal("keygen -o --force did not write a new ring")
	}
}

func TestKeygenFailures(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.json")
	if code, _, errs := keygen(t, "-o", open); code != 0 {
		t.Fatal(errs)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no mode", nil, 2, "exactly one of -o, --rotate and --show"},
		{"two modes", []string{"-o", "a", "--show", "b"}, 2, "exactly one of"},
		{"stray argument", []string{"--show", open, "extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", []string{"--frob"}, 2, "flag provided but not defined"},
		{"force without -o", []string{"--show", open, "--force"}, 2, "--force goes with -o"},
		{"activate-in without rotate", []string{"--show", open, "--activate-in", "1h"}, 2, "go with --rotate"},
		{"negative activate-in", []string{"--rotate", open, "--activate-in", "-1h"}, 2, "must not be negative"},
		{"zero keep", []string{"--rotate", open, "--keep", "0s"}, 2, "--keep must be positive"},
		{"readable file", []string{"--show", open}, 1, "mode 0644 lets group or others read the keys"},
		{"rotate readable file", []string{"--rotate", open}, 1, "chmod 600"},
		{"missing file", []string{"--show", filepath.Join(dir, "none.json")}, 1, "no such file"},
		{"missing directory", []string{"-o", filepath.Join(dir, "none", "k.json")}, 1, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := keygen(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("code %d stderr %q; want code %d and %q", code, errs, tc.code, tc.want)
			}
		})
	}
}
