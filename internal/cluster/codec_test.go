package cluster

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/persist"
)

func TestCodecRoundTrip(t *testing.T) {
	in := []change{
		{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "abc", Server: "s1", Seen: time.Unix(1700000000, 0)}},
		{pool: "app", Change: persist.Change{Op: persist.OpDelete, Key: "gone"}},
		{pool: "other", Change: persist.Change{Op: persist.OpSet, Key: string(make([]byte, persist.MaxKeyLen)), Server: "x", Seen: time.Unix(5, 0)}},
	}
	var b batchWriter
	b.reset()
	for i := range in {
		b.add(&in[i])
	}
	// Changes the encoding cannot carry are left out, never half-written.
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "k"}})
	b.add(&change{pool: "", Change: persist.Change{Op: persist.OpDelete, Key: "k"}})
	var out []change
	if err := decodeBatch(b.bytes(), func(c change) { out = append(out, c) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("got %+v, want %+v", out, in)
	}
}

func TestCodecMalformed(t *testing.T) {
	var b batchWriter
	b.reset()
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "abc", Server: "s1", Seen: time.Unix(1, 0)}})
	good := b.bytes()
	for name, p := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"count":     append([]byte{0, 0, 0, 2}, good[4:]...),
		"op":        func() []byte { q := append([]byte{}, good...); q[4+1+3] = 9; return q }(),
	} {
		applied := 0
		err := decodeBatch(p, func(change) { applied++ })
		if !errors.Is(err, ErrMalformed) || applied != 0 {
			t.Errorf("%s: got err %v and %d applied, want ErrMalformed and none", name, err, applied)
		}
	}
}

// FuzzDecodeBatch: any input either decodes into changes that encode back to
// the same bytes, or fails with ErrMalformed having applied nothing.
func FuzzDecodeBatch(f *testing.F) {
	var b batchWriter
	b.reset()
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpSet, Key: "abc", Server: "s1", Seen: time.Unix(1, 0)}})
	b.add(&change{pool: "app", Change: persist.Change{Op: persist.OpDelete, Key: "abc"}})
	f.Add(b.bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		var out []change
		err := decodeBatch(p, func(c change) { out = append(out, c) })
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(out) != 0 {
				t.Fatalf("got %v with %d changes applied", err, len(out))
			}
			return
		}
		var w batchWriter
		w.reset()
		for i := range out {
			w.add(&out[i])
		}
		if string(w.bytes()) != string(p) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", w.bytes(), p)
		}
	})
}
