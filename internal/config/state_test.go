package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStateOnly: a file with only a state: section is a complete
// configuration (a dedicated state host), and gets every default.
func TestStateOnly(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse(filepath.Join(dir, "fulcrum.yaml"), []byte("state:\n  listen: 127.0.0.1:9100\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := State{
		Listen:      "127.0.0.1:9100",
		Store:       StateStore{Type: "bolt", Path: filepath.Join(dir, "fulcrum-state.db")},
		Timeout:     20 * time.Minute,
		MaxLifetime: 24 * time.Hour,
		LockTimeout: 90 * time.Second,
		MaxSize:     1 << 20,
	}
	if c.State == nil || *c.State != want {
		t.Fatalf("State: got %+v, want %+v", c.State, want)
	}
	if len(c.Listeners) != 0 || len(c.Pools) != 0 {
		t.Fatalf("got %d listeners, %d pools; want none", len(c.Listeners), len(c.Pools))
	}
}

// TestStateAsWritten: the example, every key as written.
func TestStateAsWritten(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `state:
  listen: 0.0.0.0:9100
  token_file: ./state.token
  store:
    type: redis
    url: redis://127.0.0.1:6379/0
  timeout: 20m
  max_lifetime: 24h
  lock_timeout: 90s
  max_size: 1MiB
  encrypt: true
`
	c, err := Parse(filepath.Join(dir, "fulcrum.yaml"), []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := State{
		Listen:      "0.0.0.0:9100",
		TokenFile:   filepath.Join(dir, "state.token"),
		Store:       StateStore{Type: "redis", URL: "redis://127.0.0.1:6379/0"},
		Timeout:     20 * time.Minute,
		MaxLifetime: 24 * time.Hour,
		LockTimeout: 90 * time.Second,
		MaxSize:     1 << 20,
		Encrypt:     true,
	}
	if *c.State != want {
		t.Fatalf("State: got %+v, want %+v", *c.State, want)
	}
}

func TestStateLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9100": true, "[::1]:9100": true, "localhost:9100": true, "127.1.2.3:1": true,
		"0.0.0.0:9100": false, ":9100": false, "10.0.0.1:9100": false, "[::]:9100": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q): got %v, want %v", addr, got, want)
		}
	}
}

// TestNoStateStillNeedsListeners: without a state: section listeners and
// pools stay required.
func TestNoStateStillNeedsListeners(t *testing.T) {
	_, err := Parse("x.yaml", []byte("admin:\n  listen: 127.0.0.1:9090\n"))
	if err == nil {
		t.Fatal("Parse succeeded without listeners, pools or state")
	}
}
