package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRestartFromDisk(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "app.persist")
	tb := NewTable(Options{Now: c.Now, Timeout: time.Minute})
	tb.PinString("stale", "a")
	c.Add(30 * time.Second)
	for i := range 100 {
		tb.PinString(fmt.Sprint("k", i), []string{"a", "b"}[i%2])
	}
	if n, err := tb.Save(path); err != nil || n != 101 {
		t.Fatalf("Save = %d, %v; want 101, nil", n, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode: %v %v, want 0600", st.Mode(), err)
	}
	c.Add(40 * time.Second) // "stale" is now 70s idle: past the 1m timeout

	var emitted int
	restarted := NewTable(Options{Now: c.Now, Timeout: time.Minute, OnChange: func(Change) { emitted++ }})
	n, err := restarted.Load(path)
	if err != nil || n != 100 {
		t.Fatalf("Load = %d, %v; want 100, nil", n, err)
	}
	if emitted != 0 {
		t.Errorf("Load emitted %d changes, want 0", emitted)
	}
	if _, ok := restarted.Peek("stale"); ok {
		t.Error("expired entry came back from disk")
	}
	if want := map[string]int{"a": 50, "b": 50}; !maps.Equal(restarted.Counts(), want) {
		t.Errorf("Counts = %v, want %v", restarted.Counts(), want)
	}
	if got, ok := restarted.LookupString("k7"); !ok || got != "b" {
		t.Errorf("k7 = %q, %v; want b", got, ok)
	}
	if e, _ := restarted.Peek("k8"); !e.Seen.Equal(c.Unix(-40)) {
		t.Errorf("k8 seen %v, want %v (idle time kept across restart)", e.Seen, c.Unix(-40))
	}

	// A missing file is a first start.
	if n, err := NewTable(Options{}).Load(filepath.Join(t.TempDir(), "none")); n != 0 || err != nil {
		t.Errorf("Load(missing) = %d, %v; want 0, nil", n, err)
	}
}

func TestLoadKeepsIdleOrder(t *testing.T) {
	c := newClock()
	tb := NewTable(Options{Now: c.Now, MaxEntries: 100})
	for i := range 3 {
		tb.PinString(fmt.Sprint(i), "s")
		c.Add(time.Second)
	}
	var buf bytes.Buffer
	if _, err := tb.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	small := NewTable(Options{Now: c.Now, MaxEntries: 2})
	if _, err := small.LoadFrom(&buf); err != nil {
		t.Fatal(err)
	}
	if _, ok := small.Peek("0"); ok {
		t.Error("oldest entry kept when loading into a smaller table")
	}
	if _, ok := small.Peek("2"); !ok {
		t.Error("newest entry dropped when loading into a smaller table")
	}
}

func TestCorruptSnapshot(t *testing.T) {
	tb := NewTable(Options{})
	tb.PinString("key", "srv")
	var buf bytes.Buffer
	if _, err := tb.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-3],
		"flipped":   append(append([]byte{}, good[:len(good)-6]...), good[len(good)-6]^1, good[len(good)-5], good[len(good)-4], good[len(good)-3], good[len(good)-2], good[len(good)-1]),
		"magic":     append([]byte("x"), good[1:]...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			fresh := NewTable(Options{})
			n, err := fresh.LoadFrom(bytes.NewReader(data))
			if !errors.Is(err, ErrCorrupt) || n != 0 || fresh.Len() != 0 {
				t.Errorf("LoadFrom = %d, %v, Len %d; want 0, ErrCorrupt, 0", n, err, fresh.Len())
			}
		})
	}
}

func FuzzReadSnapshot(f *testing.F) {
	tb := NewTable(Options{})
	tb.PinString("key", "srv")
	var buf bytes.Buffer
	tb.WriteSnapshot(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(snapMagic + "\x01\x01\x03abc\x01s\x05\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadSnapshot(bytes.NewReader(data), func(key, server []byte, _ uint32) {
			if len(key) == 0 || len(key) > MaxKeyLen || len(server) == 0 || len(server) > MaxServerLen {
				t.Fatalf("entry with key %d bytes, server %d bytes", len(key), len(server))
			}
		})
	})
}

func TestSnapshotterRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	tb := NewTable(Options{})
	tb.PinString("k", "a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := &Snapshotter{Table: tb, Path: path, Every: time.Hour}
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	back := NewTable(Options{})
	if n, err := back.Load(path); n != 1 || err != nil {
		t.Fatalf("Load after Run = %d, %v; want 1, nil", n, err)
	}
	matches, _ := filepath.Glob(path + ".tmp*")
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}
