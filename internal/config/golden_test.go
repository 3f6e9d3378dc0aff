package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// TestBadGolden loads each testdata/bad/*.yaml, which must be rejected, and
// compares the full error text with the .golden file next to it.
func TestBadGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("got %d bad configs, want at least 20", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			_, err := Load(file)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("got error of type %T, want Errors: %v", err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run go test -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestManyMistakesAllReported makes sure one run reports every mistake in a
// file, in line order, not just the first.
func TestManyMistakesAllReported(t *testing.T) {
	_, err := Load("testdata/bad/many_mistakes.yaml")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []string{
		"admin.listen",
		"shutdown_timeout",
		"listeners[0].protocol",
		"listeners[1]", // missing listen
		"listeners[1].pool",
		"pools[0].balance",
		"pools[0].servers[0].weight",
		"pools[0].servers[1].name",
		"pools[0].servers[1].address",
		"pools[0].keepalive.hash",
		"pools[0].keepalive.hash_mask[0]",
		"pools[0].keepalive.interval",
		"pools[0].keepalive.rise",
		"pools[0].keepalive", // unknown field colour
	}
	paths := map[string]bool{}
	for i, e := range es {
		paths[e.Path] = true
		if e.Line <= 0 || e.Col <= 0 {
			t.Errorf("%v: got line %d col %d, want positive", e, e.Line, e.Col)
		}
		if i > 0 && (e.Line < es[i-1].Line || e.Line == es[i-1].Line && e.Col < es[i-1].Col) {
			t.Errorf("errors not sorted: %v after %v", e, es[i-1])
		}
	}
	for _, p := range want {
		if !paths[p] {
			t.Errorf("no error reported for %s; got:\n%v", p, err)
		}
	}
}
